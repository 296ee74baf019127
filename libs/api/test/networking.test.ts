import { describe, expect, it } from 'vitest';
import { errorsOf, issuesOf, warningsOf } from './helpers.js';

function error(path: string, message: string) {
  return { severity: 'error', path, message };
}
function warning(path: string, message: string) {
  return { severity: 'warning', path, message };
}

describe('DestinationRule', () => {
  it('accepts a full traffic policy', () => {
    const policy = {
      loadBalancer: {
        consistentHash: {
          httpCookie: { name: 'user', ttl: '0s', path: '/' },
          ringHash: { minimumRingSize: 1024 },
        },
        localityLbSetting: {
          distribute: [{ from: 'us-west/zone1/*', to: { 'us-west/zone1/*': 80, 'us-west/zone2/*': 20 } }],
        },
        warmup: { duration: '60s', minimumPercent: 10, aggression: 1.5 },
      },
      connectionPool: {
        tcp: {
          maxConnections: 100,
          connectTimeout: '30ms',
          tcpKeepalive: { time: '7200s', interval: '75s', probes: 9 },
          idleTimeout: '0s',
        },
        http: {
          http2MaxRequests: 1000,
          maxRequestsPerConnection: 10,
          idleTimeout: '1h',
          h2UpgradePolicy: 'UPGRADE',
        },
      },
      outlierDetection: {
        consecutive5xxErrors: 7,
        interval: '5m',
        baseEjectionTime: '15m',
        maxEjectionPercent: 50,
      },
      tls: { mode: 'SIMPLE', sni: 'reviews.example.com', caCertificates: '/etc/certs/ca.pem' },
      portLevelSettings: [{ port: { number: 80 }, loadBalancer: { simple: 'LEAST_REQUEST' } }],
      retryBudget: { percent: 20, minRetryConcurrency: 3 },
    };
    const spec = {
      host: 'reviews.prod.svc.cluster.local',
      trafficPolicy: policy,
      subsets: [{ name: 'v1', labels: { version: 'v1' } }],
    };
    expect(issuesOf('DestinationRule', spec)).toEqual([]);
  });

  it('requires host and validates it (short names and wildcards are fine)', () => {
    expect(errorsOf('DestinationRule', {})).toEqual([error('spec.host', 'required field "host" is missing')]);
    expect(errorsOf('DestinationRule', { host: 'reviews' })).toEqual([]);
    expect(errorsOf('DestinationRule', { host: '*.example.com' })).toEqual([]);
    expect(errorsOf('DestinationRule', { host: 'a..b' })[0]!.path).toBe('spec.host');
  });

  it('checks subsets: names, duplicates, labels', () => {
    expect(errorsOf('DestinationRule', { host: 'r', subsets: [{ name: 'v1' }, { name: 'v1' }] })).toEqual([
      error('spec.subsets[1].name', 'duplicate subset name "v1"'),
    ]);
    expect(errorsOf('DestinationRule', { host: 'r', subsets: [{ labels: { version: 'v1' } }] })).toEqual([
      error('spec.subsets[0].name', 'required field "name" is missing'),
    ]);
    expect(
      errorsOf('DestinationRule', { host: 'r', subsets: [{ name: 'v1', labels: { version: '*' } }] }),
    ).toEqual([error('spec.subsets[0].labels.version', 'wildcards are not supported in label values ("*")')]);
  });

  it('checks enums and durations in traffic policies', () => {
    expect(
      errorsOf('DestinationRule', { host: 'r', trafficPolicy: { loadBalancer: { simple: 'FASTEST' } } }),
    ).toEqual([
      error(
        'spec.trafficPolicy.loadBalancer.simple',
        'must be one of UNSPECIFIED, LEAST_CONN, RANDOM, PASSTHROUGH, ROUND_ROBIN, LEAST_REQUEST, got "FASTEST"',
      ),
    ]);
    expect(
      errorsOf('DestinationRule', {
        host: 'r',
        trafficPolicy: { connectionPool: { tcp: { connectTimeout: '0s' } } },
      }),
    ).toEqual([
      error('spec.trafficPolicy.connectionPool.tcp.connectTimeout', 'must be at least 1ms, got "0s"'),
    ]);
    expect(
      errorsOf('DestinationRule', { host: 'r', trafficPolicy: { outlierDetection: { interval: '1x' } } })[0]!
        .path,
    ).toBe('spec.trafficPolicy.outlierDetection.interval');
    expect(
      errorsOf('DestinationRule', {
        host: 'r',
        trafficPolicy: { outlierDetection: { maxEjectionPercent: 101 } },
      }),
    ).toEqual([
      error('spec.trafficPolicy.outlierDetection.maxEjectionPercent', 'must be between 0 and 100, got 101'),
    ]);
    expect(
      errorsOf('DestinationRule', { host: 'r', trafficPolicy: { tls: { mode: 'STRICT' } } })[0]!.message,
    ).toBe('must be one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL, got "STRICT"');
  });

  it('checks semantic rules of traffic policies', () => {
    const dr = (trafficPolicy: unknown) => errorsOf('DestinationRule', { host: 'r', trafficPolicy });
    expect(dr({})).toEqual([error('spec.trafficPolicy', 'a traffic policy needs at least one setting')]);
    expect(dr({ loadBalancer: { simple: 'RANDOM', consistentHash: { useSourceIp: true } } })).toEqual([
      error('spec.trafficPolicy.loadBalancer', 'only one of simple or consistentHash may be set'),
    ]);
    expect(
      dr({ loadBalancer: { consistentHash: { maglev: { tableSize: 1000 }, useSourceIp: true } } }),
    ).toEqual([
      error(
        'spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize',
        'must be a prime number, got 1000',
      ),
    ]);
    expect(
      dr({
        loadBalancer: {
          consistentHash: {
            httpCookie: {
              name: 'u',
              ttl: '1s',
              attributes: [{ name: 'Same Site' }, { name: 'x', value: 'a;b' }],
            },
          },
        },
      }),
    ).toEqual([
      error(
        'spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.attributes[0].name',
        '"Same Site" is not a cookie attribute name',
      ),
      error(
        'spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.attributes[1].value',
        'must not contain ";" or line breaks',
      ),
    ]);
    expect(
      dr({
        connectionPool: { tcp: { tcpKeepalive: { probes: 200, time: '10h', interval: '30s' } } },
        loadBalancer: { consistentHash: { useSourceIp: true, ringHash: { minimumRingSize: 10_000_000 } } },
      }),
    ).toEqual([
      error('spec.trafficPolicy.connectionPool.tcp.tcpKeepalive.probes', 'must be at most 127, got 200'),
      error('spec.trafficPolicy.connectionPool.tcp.tcpKeepalive.time', 'must be at most 32767s, got 10h'),
      error(
        'spec.trafficPolicy.loadBalancer.consistentHash.ringHash.minimumRingSize',
        "must be at most 8388608 (Envoy's largest ring), got 10000000",
      ),
    ]);
    expect(dr({ loadBalancer: { consistentHash: {} } })).toEqual([
      error(
        'spec.trafficPolicy.loadBalancer.consistentHash',
        'set one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName',
      ),
    ]);
    expect(dr({ connectionPool: { http: { h2UpgradePolicy: 'UPGRADE', useClientProtocol: true } } })).toEqual(
      [
        error(
          'spec.trafficPolicy.connectionPool.http.useClientProtocol',
          'cannot be true when h2UpgradePolicy is UPGRADE',
        ),
      ],
    );
    expect(dr({ tls: { mode: 'MUTUAL' } })).toEqual([
      error(
        'spec.trafficPolicy.tls.clientCertificate',
        'MUTUAL TLS needs a client certificate (or a credentialName)',
      ),
      error('spec.trafficPolicy.tls.privateKey', 'MUTUAL TLS needs a private key (or a credentialName)'),
    ]);
    expect(dr({ portLevelSettings: [{ loadBalancer: { simple: 'RANDOM' } }] })).toEqual([
      error(
        'spec.trafficPolicy.portLevelSettings[0].port',
        'a port-level policy must name its port (port.number)',
      ),
    ]);
    expect(dr({ tunnel: { targetHost: 'proxy.example.com', targetPort: 3128, protocol: 'GET' } })).toEqual([
      error('spec.trafficPolicy.tunnel.protocol', 'must be "CONNECT" or "POST", got "GET"'),
    ]);
    expect(
      dr({
        loadBalancer: {
          localityLbSetting: {
            distribute: [{ from: 'us-west/*', to: { 'us-west/*': 70, 'us-east/*': 20 } }],
          },
        },
      }),
    ).toEqual([
      error(
        'spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to',
        'locality weights must add up to 100, got 90',
      ),
    ]);
    expect(
      dr({ loadBalancer: { localityLbSetting: { failover: [{ from: 'us-east', to: 'us-east' }] } } }),
    ).toEqual([
      error(
        'spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]',
        'from and to must be different regions',
      ),
    ]);
  });

  it('warns about deprecated and ineffective settings', () => {
    expect(
      warningsOf('DestinationRule', {
        host: 'r',
        trafficPolicy: {
          outlierDetection: { consecutiveErrors: 5 },
          loadBalancer: { localityLbSetting: { failover: [{ from: 'a', to: 'b' }] } },
        },
      }),
    ).toEqual([
      warning(
        'spec.trafficPolicy.outlierDetection.consecutiveErrors',
        '"consecutiveErrors" is deprecated; use consecutiveGatewayErrors or consecutive5xxErrors',
      ),
    ]);
    expect(
      warningsOf('DestinationRule', {
        host: 'r',
        trafficPolicy: { loadBalancer: { localityLbSetting: { failover: [{ from: 'a', to: 'b' }] } } },
      }),
    ).toEqual([
      warning(
        'spec.trafficPolicy.loadBalancer.localityLbSetting',
        'locality failover only happens with outlierDetection set in the same traffic policy',
      ),
    ]);
  });

  it('keeps a workloadSelector rule in its own namespace', () => {
    expect(
      errorsOf('DestinationRule', {
        host: 'r',
        workloadSelector: { matchLabels: { app: 'a' } },
        exportTo: ['*'],
      }),
    ).toEqual([
      error(
        'spec.exportTo',
        'a DestinationRule with a workloadSelector can only be exported to its own namespace',
      ),
    ]);
  });
});

describe('Gateway', () => {
  const server = (extra: Record<string, unknown> = {}) => ({
    port: { number: 80, name: 'http', protocol: 'HTTP' },
    hosts: ['*'],
    ...extra,
  });

  it('accepts HTTP, HTTPS with a credential, passthrough TLS and namespace/host forms', () => {
    const spec = {
      selector: { istio: 'ingressgateway' },
      servers: [
        server({
          hosts: [
            './bookinfo.example.com',
            '*/*.apps.example.com',
            'prod/api.example.com',
            'plain.example.com',
          ],
        }),
        server({
          port: { number: 443, name: 'https', protocol: 'HTTPS' },
          tls: { mode: 'SIMPLE', credentialName: 'bookinfo-cert' },
        }),
        server({ port: { number: 8443, name: 'tls', protocol: 'TLS' }, tls: { mode: 'PASSTHROUGH' } }),
        server({ port: { number: 8080, name: 'redirect', protocol: 'HTTP' }, tls: { httpsRedirect: true } }),
      ],
    };
    expect(issuesOf('Gateway', spec)).toEqual([]);
  });

  it('needs servers, each with a port and hosts', () => {
    expect(errorsOf('Gateway', { selector: { istio: 'ingressgateway' } })).toEqual([
      error('spec.servers', 'at least one server is required'),
    ]);
    expect(errorsOf('Gateway', { servers: [{ hosts: ['*'] }] })).toEqual([
      error('spec.servers[0].port', 'required field "port" is missing'),
    ]);
    expect(
      errorsOf('Gateway', { servers: [{ port: { number: 80, name: 'http', protocol: 'HTTP' } }] }),
    ).toEqual([error('spec.servers[0].hosts', 'required field "hosts" is missing')]);
    expect(errorsOf('Gateway', { servers: [server({ hosts: [] })] })).toEqual([
      error('spec.servers[0].hosts', 'at least one host is required (use "*" for any)'),
    ]);
    expect(errorsOf('Gateway', { servers: [server({ port: { number: 80, name: 'http' } })] })).toEqual([
      error('spec.servers[0].port.protocol', 'required field "protocol" is missing'),
    ]);
  });

  it('allows a port without a name, with a warning (Istio requires one)', () => {
    expect(issuesOf('Gateway', { servers: [server({ port: { number: 80, protocol: 'HTTP' } })] })).toEqual([
      warning(
        'spec.servers[0].port.name',
        'the port has no name; Istio requires one, so this Gateway would be rejected there',
      ),
    ]);
  });

  it('checks ports, protocols and unique port names', () => {
    expect(
      errorsOf('Gateway', { servers: [server({ port: { number: 0, name: 'http', protocol: 'HTTP' } })] }),
    ).toEqual([error('spec.servers[0].port.number', 'must be a port number between 1 and 65535, got 0')]);
    expect(
      errorsOf('Gateway', { servers: [server({ port: { number: 80, name: 'http', protocol: 'SMTP' } })] }),
    ).toEqual([
      error(
        'spec.servers[0].port.protocol',
        'unsupported protocol "SMTP"; use one of HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TCP, TLS, UDP, MONGO, REDIS, MYSQL, HTTP_PROXY',
      ),
    ]);
    expect(
      errorsOf('Gateway', {
        servers: [server(), server({ port: { number: 81, name: 'http', protocol: 'HTTP' } })],
      }),
    ).toEqual([
      error(
        'spec.servers[1].port.name',
        'port names must be unique across servers: "http" is also used by servers[0]',
      ),
    ]);
  });

  it('checks hosts in namespace/host form', () => {
    const hosts = (h: string[]) => errorsOf('Gateway', { servers: [server({ hosts: h })] });
    expect(hosts(['ns/'])).toEqual([
      error('spec.servers[0].hosts[0]', '"ns/": namespace and host must not be empty'),
    ]);
    expect(hosts(['bad_ns/*'])).toEqual([
      error(
        'spec.servers[0].hosts[0]',
        '"bad_ns/*": namespace "bad_ns" is not a valid DNS label: use letters, digits and "-", starting and ending with a letter or digit',
      ),
    ]);
    expect(hosts(['./foo.*.com'])).toEqual([
      error(
        'spec.servers[0].hosts[0]',
        'invalid host "foo.*.com": a wildcard is only allowed as the first label ("*.example.com")',
      ),
    ]);
  });

  it('checks TLS settings as Istio does', () => {
    const https = (tls?: unknown) =>
      errorsOf('Gateway', {
        servers: [server({ port: { number: 443, name: 'https', protocol: 'HTTPS' }, tls })],
      });
    expect(https()).toEqual([error('spec.servers[0].tls', 'a HTTPS server needs tls settings')]);
    expect(https({ mode: 'SIMPLE' })).toEqual([
      error(
        'spec.servers[0].tls.serverCertificate',
        'SIMPLE TLS needs a server certificate (or a credentialName)',
      ),
      error('spec.servers[0].tls.privateKey', 'SIMPLE TLS needs a private key (or a credentialName)'),
    ]);
    expect(https({ mode: 'MUTUAL', serverCertificate: '/c', privateKey: '/k' })).toEqual([
      error(
        'spec.servers[0].tls.caCertificates',
        'MUTUAL TLS needs a CA bundle to verify clients (or a credentialName)',
      ),
    ]);
    expect(https({ mode: 'ISTIO_MUTUAL', credentialName: 'x' })).toEqual([
      error(
        'spec.servers[0].tls.credentialName',
        'cannot be set with ISTIO_MUTUAL (Istio provides the certificates)',
      ),
    ]);
    expect(
      errorsOf('Gateway', { servers: [server({ tls: { mode: 'SIMPLE', credentialName: 'c' } })] }),
    ).toEqual([error('spec.servers[0].tls', 'a plain-text HTTP server can only set tls.httpsRedirect')]);
    expect(
      errorsOf('Gateway', {
        servers: [
          server({
            port: { number: 9000, name: 'tcp', protocol: 'TCP' },
            tls: { mode: 'SIMPLE', credentialName: 'c' },
          }),
        ],
      }),
    ).toEqual([error('spec.servers[0].tls', 'a TCP server cannot have tls settings')]);
  });

  it('checks certificate lists, CRLs and client certificate pins', () => {
    const https = (tls: unknown) =>
      issuesOf('Gateway', {
        servers: [server({ port: { number: 443, name: 'https', protocol: 'HTTPS' }, tls })],
      });
    const spki = Buffer.alloc(32, 7).toString('base64');
    const hash = 'ab:'.repeat(31) + 'ab';
    // An RSA and an ECDSA certificate from files, a client CA, a CRL and pins: all fine.
    expect(
      https({
        mode: 'MUTUAL',
        tlsCertificates: [
          { serverCertificate: '/rsa.crt', privateKey: '/rsa.key' },
          { serverCertificate: '/ec.crt', privateKey: '/ec.key' },
        ],
        caCertificates: '/ca.crt',
        caCrl: '/ca.crl',
        verifyCertificateSpki: [spki],
        verifyCertificateHash: [hash],
      }),
    ).toEqual([]);
    expect(https({ mode: 'SIMPLE', credentialNames: ['rsa', 'ec', 'third'] })).toEqual([
      error(
        'spec.servers[0].tls.credentialNames',
        'at most 2 entries: one RSA and one ECDSA certificate, picked by what the client accepts',
      ),
    ]);
    expect(
      https({ mode: 'SIMPLE', credentialName: 'a', tlsCertificates: [{ serverCertificate: '/c' }] }),
    ).toEqual([
      error('spec.servers[0].tls', 'only one of credentialName, tlsCertificates may be set'),
      error('spec.servers[0].tls.tlsCertificates[0].privateKey', 'is required'),
    ]);
    expect(
      https({
        mode: 'MUTUAL',
        tlsCertificates: [{ serverCertificate: '/c', privateKey: '/k' }],
        verifyCertificateSpki: ['abc'],
        verifyCertificateHash: ['12:34'],
      }),
    ).toEqual([
      error('spec.servers[0].tls.caCertificates', 'MUTUAL TLS needs a CA bundle to verify clients'),
      error(
        'spec.servers[0].tls.verifyCertificateSpki[0]',
        '"abc" is not a base64 SHA-256 digest of a public key (44 characters, as openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64 prints)',
      ),
      error(
        'spec.servers[0].tls.verifyCertificateHash[0]',
        '"12:34" is not a SHA-256 certificate fingerprint (64 hex digits, colons allowed)',
      ),
    ]);
    expect(https({ mode: 'MUTUAL', credentialNames: ['a'], caCrl: '/ca.crl' })).toEqual([
      error(
        'spec.servers[0].tls.caCrl',
        'is not supported with credentialName; put the CRL in the credential (ca.crl)',
      ),
    ]);
    expect(https({ mode: 'SIMPLE', credentialName: 'a', verifyCertificateHash: [hash] })).toEqual([
      warning(
        'spec.servers[0].tls',
        'verifyCertificateSpki/verifyCertificateHash check client certificates, which SIMPLE TLS does not ask for',
      ),
    ]);
  });

  it('checks the selector labels', () => {
    expect(errorsOf('Gateway', { selector: { 'istio/': 'x' }, servers: [server()] })[0]!.path).toBe(
      'spec.selector["istio/"]',
    );
  });
});

describe('ServiceEntry', () => {
  const ports = [{ number: 443, name: 'https', protocol: 'TLS' }];

  it('accepts the usual shapes', () => {
    expect(
      issuesOf('ServiceEntry', {
        hosts: ['api.example.com'],
        ports,
        location: 'MESH_EXTERNAL',
        resolution: 'DNS',
      }),
    ).toEqual([]);
    expect(
      issuesOf('ServiceEntry', {
        hosts: ['reviews.default.svc.cluster.local'],
        ports: [{ number: 9080, name: 'http', protocol: 'HTTP', targetPort: 19080 }],
        resolution: 'STATIC',
        endpoints: [
          {
            address: '10.0.0.7',
            ports: { http: 9081 },
            labels: { version: 'v1' },
            locality: 'us-east/zone-a',
            weight: 2,
          },
        ],
      }),
    ).toEqual([]);
    expect(
      issuesOf('ServiceEntry', {
        hosts: ['db.internal'],
        addresses: ['10.1.0.0/16'],
        ports: [{ number: 5432, name: 'tcp-postgres' }],
        resolution: 'STATIC',
        workloadSelector: { labels: { app: 'db' } },
      }),
    ).toEqual([]);
  });

  it('needs hosts and named, numbered ports', () => {
    expect(errorsOf('ServiceEntry', { ports })).toEqual([
      error('spec.hosts', 'required field "hosts" is missing'),
    ]);
    expect(errorsOf('ServiceEntry', { hosts: [], ports })).toEqual([
      error('spec.hosts', 'at least one host is required'),
    ]);
    expect(errorsOf('ServiceEntry', { hosts: ['a.com'], ports: [{ number: 80 }] })).toEqual([
      error('spec.ports[0].name', 'required field "name" is missing'),
    ]);
    expect(errorsOf('ServiceEntry', { hosts: ['a.com'], ports: [{ name: 'http' }] })).toEqual([
      error('spec.ports[0].number', 'required field "number" is missing'),
    ]);
    expect(errorsOf('ServiceEntry', { hosts: ['*'], ports })).toEqual([
      error(
        'spec.hosts[0]',
        '"*" is not allowed in a ServiceEntry; name the hosts (wildcards like "*.example.com" are fine)',
      ),
    ]);
    expect(
      errorsOf('ServiceEntry', {
        hosts: ['a.com'],
        ports: [
          { number: 80, name: 'http' },
          { number: 80, name: 'http' },
        ],
      }),
    ).toEqual([
      error('spec.ports[1].name', 'port name "http" is already used'),
      error('spec.ports[1].number', 'port 80 is already defined'),
    ]);
  });

  it('follows Istio on resolution modes', () => {
    expect(
      errorsOf('ServiceEntry', {
        hosts: ['a.com'],
        ports,
        resolution: 'NONE',
        endpoints: [{ address: '1.2.3.4' }],
      }),
    ).toEqual([
      error(
        'spec.endpoints',
        'resolution NONE forwards to the original destination, so endpoints cannot be given',
      ),
    ]);
    expect(
      errorsOf('ServiceEntry', {
        hosts: ['a.com'],
        ports,
        resolution: 'STATIC',
        endpoints: [{ address: 'host.example.com' }],
      }),
    ).toEqual([
      error(
        'spec.endpoints[0].address',
        '"host.example.com" is not an IP address (needed with resolution STATIC)',
      ),
    ]);
    expect(errorsOf('ServiceEntry', { hosts: ['*.a.com'], ports, resolution: 'DNS' })).toEqual([
      error(
        'spec.hosts[0]',
        'with resolution DNS and no endpoints, hosts are resolved by DNS and cannot be wildcards',
      ),
    ]);
    expect(
      errorsOf('ServiceEntry', {
        hosts: ['a.com'],
        ports,
        resolution: 'DNS_ROUND_ROBIN',
        endpoints: [{ address: 'x.a.com' }, { address: 'y.a.com' }],
      }),
    ).toEqual([error('spec.endpoints', 'resolution DNS_ROUND_ROBIN allows at most one endpoint, got 2')]);
    expect(
      errorsOf('ServiceEntry', {
        hosts: ['a.com'],
        ports,
        resolution: 'STATIC',
        endpoints: [{ address: '1.2.3.4' }],
        workloadSelector: { labels: { app: 'a' } },
      }),
    ).toEqual([error('spec.endpoints', 'only one of workloadSelector or endpoints may be set')]);
    expect(
      errorsOf('ServiceEntry', {
        hosts: ['a.com'],
        ports,
        resolution: 'STATIC',
        endpoints: [{ address: '1.2.3.4', ports: { grpc: 9000 } }],
      }),
    ).toEqual([
      error('spec.endpoints[0].ports.grpc', 'port "grpc" is not one of the ServiceEntry\'s ports (https)'),
    ]);
    expect(errorsOf('ServiceEntry', { hosts: ['a.com'], ports, resolution: 'MAGIC' })[0]!.message).toBe(
      'must be one of NONE, STATIC, DNS, DNS_ROUND_ROBIN, DYNAMIC_DNS, got "MAGIC"',
    );
  });

  it('rejects several hosts on plain TCP ports and CIDRs with DNS', () => {
    expect(
      errorsOf('ServiceEntry', {
        hosts: ['a.com', 'b.com'],
        ports: [{ number: 27017, name: 'mongo' }],
        resolution: 'DNS',
      }),
    ).toEqual([
      error('spec.ports[0]', 'several hosts need HTTP or TLS ports to be told apart (or resolution NONE)'),
    ]);
    expect(
      errorsOf('ServiceEntry', { hosts: ['a.com'], addresses: ['10.0.0.0/8'], ports, resolution: 'DNS' }),
    ).toEqual([error('spec.addresses', 'CIDR addresses need resolution NONE or STATIC, not DNS')]);
  });

  it('warns where Istio warns', () => {
    expect(warningsOf('ServiceEntry', { hosts: ['*foo.com'], ports, resolution: 'NONE' })).toEqual([
      warning(
        'spec.hosts[0]',
        'partial wildcard "*foo.com" is not supported by Envoy\'s matching; use "*.foo.com"',
      ),
    ]);
    expect(
      warningsOf('ServiceEntry', { hosts: ['a.com'], ports, resolution: 'STATIC', workloadSelector: {} }),
    ).toEqual([
      warning(
        'spec.workloadSelector',
        'the selector has no labels, so this ServiceEntry applies to every workload in the namespace',
      ),
    ]);
  });
});

describe('WorkloadEntry', () => {
  it('accepts IPs, host names and unix sockets', () => {
    expect(
      issuesOf('WorkloadEntry', {
        address: '10.0.0.1',
        ports: { http: 8080 },
        labels: { app: 'a' },
        serviceAccount: 'sa',
      }),
    ).toEqual([]);
    expect(issuesOf('WorkloadEntry', { address: 'vm1.example.com' })).toEqual([]);
    expect(issuesOf('WorkloadEntry', { address: 'unix:///var/run/app.sock' })).toEqual([]);
  });

  it('requires an address unless a network is given', () => {
    expect(errorsOf('WorkloadEntry', { labels: { app: 'a' } })).toEqual([
      error('spec.address', 'required field "address" is missing (an IP address, host name or unix:// path)'),
    ]);
    expect(issuesOf('WorkloadEntry', { network: 'vpc1' })).toEqual([
      warning('spec.address', 'no address: reachable only through the gateway of network "vpc1"'),
    ]);
  });

  it('checks ports, labels and the address form', () => {
    expect(errorsOf('WorkloadEntry', { address: '10.0.0.1', ports: { http: 0 } })).toEqual([
      error('spec.ports.http', 'must be a port number between 1 and 65535, got 0'),
    ]);
    expect(errorsOf('WorkloadEntry', { address: '10.0.0.1', ports: { http: '80' } })).toEqual([
      error('spec.ports.http', 'expected a number, got string'),
    ]);
    expect(errorsOf('WorkloadEntry', { address: 'unix://relative.sock' })).toEqual([
      error('spec.address', '"relative.sock" is not an absolute path to a file'),
    ]);
    expect(errorsOf('WorkloadEntry', { address: 'bad_host!' })).toEqual([
      error('spec.address', '"bad_host!" is not a valid IP address or host name'),
    ]);
    expect(errorsOf('WorkloadEntry', { address: '10.0.0.1', weight: -2 })).toEqual([
      error('spec.weight', 'must be between 0 and 4294967295, got -2'),
    ]);
  });
});

describe('Sidecar', () => {
  it('accepts ingress, egress and outbound policy', () => {
    const spec = {
      workloadSelector: { labels: { app: 'reviews' } },
      ingress: [
        {
          port: { number: 9080, protocol: 'HTTP', name: 'http' },
          defaultEndpoint: '127.0.0.1:8080',
          connectionPool: { http: { http1MaxPendingRequests: 10 } },
        },
      ],
      egress: [
        {
          port: { number: 3306, protocol: 'MYSQL', name: 'mysql' },
          hosts: ['./mysql.default.svc.cluster.local'],
        },
        { hosts: ['./*', 'istio-system/*', '~/*'] },
      ],
      outboundTrafficPolicy: {
        mode: 'ALLOW_ANY',
        egressProxy: { host: 'egress.example.com', port: { number: 443 } },
      },
      inboundConnectionPool: { tcp: { maxConnections: 10 } },
    };
    expect(issuesOf('Sidecar', spec)).toEqual([]);
  });

  it('rejects an empty Sidecar', () => {
    expect(errorsOf('Sidecar', {})).toEqual([
      error(
        'spec',
        'empty Sidecar: set at least one of ingress, egress, outboundTrafficPolicy or inboundConnectionPool',
      ),
    ]);
  });

  it('checks egress hosts and listener ports', () => {
    expect(errorsOf('Sidecar', { egress: [{ hosts: ['reviews'] }] })).toEqual([
      error(
        'spec.egress[0].hosts[0]',
        '"reviews" must be of the form namespace/host, like "./reviews.default.svc.cluster.local", "istio-system/*" or "*/*"',
      ),
    ]);
    expect(
      errorsOf('Sidecar', { egress: [{ hosts: ['./*'] }, { port: { number: 80 }, hosts: ['./*'] }] }),
    ).toEqual([
      error('spec.egress[0].port', 'only the last egress listener may omit its port (the catch-all)'),
    ]);
    expect(errorsOf('Sidecar', { egress: [{ hosts: [] }] })).toEqual([
      error('spec.egress[0].hosts', 'at least one host is required (for example "./*" or "istio-system/*")'),
    ]);
    expect(
      errorsOf('Sidecar', { ingress: [{ port: { number: 80 }, defaultEndpoint: '10.0.0.1:80' }] }),
    ).toEqual([
      error(
        'spec.ingress[0].defaultEndpoint',
        '"10.0.0.1:80" must be 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port> or unix://<path>',
      ),
    ]);
    expect(
      errorsOf('Sidecar', {
        outboundTrafficPolicy: {
          mode: 'REGISTRY_ONLY',
          egressProxy: { host: 'e.com', port: { number: 80 } },
        },
      }),
    ).toEqual([error('spec.outboundTrafficPolicy.egressProxy', 'egressProxy needs mode ALLOW_ANY')]);
    expect(errorsOf('Sidecar', { outboundTrafficPolicy: { mode: 'DENY_ALL' } })[0]!.message).toBe(
      'must be one of REGISTRY_ONLY, ALLOW_ANY, got "DENY_ALL"',
    );
  });
});
