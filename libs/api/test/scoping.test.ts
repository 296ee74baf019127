import { describe, expect, it } from 'vitest';
import { errorsOf, issuesOf, warningsOf } from './helpers.js';

/**
 * Bad input for the features that scope what a proxy sees: the Sidecar
 * resource, VirtualService delegation and exportTo — rejected (or warned
 * about) as Istio's validation does, naming the field and the reason.
 */
function error(path: string, message: string) {
  return { severity: 'error', path, message };
}

const ingress = (extra: Record<string, unknown>) => ({
  ingress: [{ port: { number: 9080, protocol: 'HTTPS', name: 'https' }, ...extra }],
});

describe('Sidecar', () => {
  it('accepts Istio’s host forms, ingress TLS from files and an egress proxy', () => {
    expect(
      issuesOf('Sidecar', {
        egress: [
          {
            port: { number: 3306, protocol: 'MYSQL', name: 'mysql' },
            captureMode: 'NONE',
            bind: '127.0.0.1',
            hosts: ['./mysql.default.svc.cluster.local'],
          },
          { hosts: ['./*', 'istio-system/*', '*/*.example.com', '~/*'] },
        ],
        ...ingress({
          defaultEndpoint: '127.0.0.1:8443',
          tls: { mode: 'SIMPLE', serverCertificate: '/etc/cert.pem', privateKey: '/etc/key.pem' },
        }),
        outboundTrafficPolicy: {
          mode: 'ALLOW_ANY',
          egressProxy: { host: 'istio-egressgateway.istio-system.svc.cluster.local', port: { number: 80 } },
        },
      }),
    ).toEqual([]);
  });

  it('checks egress hosts: namespace/host, nothing empty, and warns about short names', () => {
    expect(errorsOf('Sidecar', { egress: [{ hosts: ['*/'] }] })).toEqual([
      error('spec.egress[0].hosts[0]', '"*/": namespace and host must not be empty'),
    ]);
    expect(errorsOf('Sidecar', { egress: [{ hosts: ['reviews.default.svc.cluster.local'] }] })).toEqual([
      error(
        'spec.egress[0].hosts[0]',
        '"reviews.default.svc.cluster.local" must be of the form namespace/host, like "./reviews.default.svc.cluster.local", "istio-system/*" or "*/*"',
      ),
    ]);
    expect(warningsOf('Sidecar', { egress: [{ hosts: ['./reviews'] }] })).toEqual([
      {
        severity: 'warning',
        path: 'spec.egress[0].hosts[0]',
        message:
          '"reviews" is a short name: egress hosts are matched as FQDNs, so it only matches a service whose hostname is exactly "reviews"; for a Kubernetes service use "./reviews.<namespace>.svc.cluster.local" or "./*"',
      },
    ]);
  });

  it('a unix:// bind goes with port 0; any other port binds an IP', () => {
    expect(
      errorsOf('Sidecar', {
        egress: [
          { port: { number: 9080 }, captureMode: 'NONE', bind: 'unix:///var/run/app.sock', hosts: ['./*'] },
        ],
      }),
    ).toEqual([error('spec.egress[0].bind', expect.stringContaining('unix:///var/run/app.sock'))]);
    expect(
      errorsOf('Sidecar', {
        egress: [
          { port: { number: 0 }, captureMode: 'NONE', bind: 'unix:///var/run/app.sock', hosts: ['./*'] },
        ],
      }),
    ).toEqual([]);
  });

  it('ingress TLS: SIMPLE needs files, MUTUAL a CA; no mesh modes, credentials or SANs on a sidecar', () => {
    expect(errorsOf('Sidecar', ingress({ tls: { mode: 'SIMPLE' } }))).toEqual([
      error(
        'spec.ingress[0].tls.serverCertificate',
        'SIMPLE TLS needs a server certificate (or a credentialName)',
      ),
      error('spec.ingress[0].tls.privateKey', 'SIMPLE TLS needs a private key (or a credentialName)'),
    ]);
    expect(
      errorsOf('Sidecar', ingress({ tls: { mode: 'MUTUAL', serverCertificate: '/c', privateKey: '/k' } })),
    ).toEqual([
      error(
        'spec.ingress[0].tls.caCertificates',
        'MUTUAL TLS needs a CA bundle to verify clients (or a credentialName)',
      ),
    ]);
    expect(errorsOf('Sidecar', ingress({ tls: { mode: 'ISTIO_MUTUAL' } }))).toEqual([
      error('spec.ingress[0].tls.mode', 'ISTIO_MUTUAL is not supported on sidecar ingress'),
    ]);
    expect(errorsOf('Sidecar', ingress({ tls: { mode: 'SIMPLE', credentialName: 'cert' } }))).toEqual([
      error('spec.ingress[0].tls.credentialName', 'is not supported on sidecar ingress'),
    ]);
    expect(
      errorsOf(
        'Sidecar',
        ingress({
          tls: { mode: 'SIMPLE', serverCertificate: '/c', privateKey: '/k', subjectAltNames: ['a'] },
        }),
      ),
    ).toEqual([error('spec.ingress[0].tls.subjectAltNames', 'is not supported on sidecar ingress')]);
  });

  it('ingress ports are unique and defaultEndpoint is loopback, the instance IP or a socket', () => {
    expect(
      errorsOf('Sidecar', {
        ingress: [
          { port: { number: 80, protocol: 'HTTP' } },
          { port: { number: 80, protocol: 'HTTP' }, defaultEndpoint: '127.0.0.1:70000' },
        ],
      }),
    ).toEqual([
      error('spec.ingress[1].port.number', 'port 80 already has an ingress listener'),
      error('spec.ingress[1].defaultEndpoint', 'port 70000 is not between 1 and 65535'),
    ]);
  });

  it('egressProxy: ALLOW_ANY only, with a port', () => {
    expect(
      errorsOf('Sidecar', {
        outboundTrafficPolicy: { mode: 'ALLOW_ANY', egressProxy: { host: 'egress.example.com' } },
      }),
    ).toEqual([error('spec.outboundTrafficPolicy.egressProxy.port', 'the egress proxy port is required')]);
    expect(
      errorsOf('Sidecar', {
        outboundTrafficPolicy: { egressProxy: { host: 'egress.example.com', port: { number: 80 } } },
      }),
    ).toEqual([error('spec.outboundTrafficPolicy.egressProxy', 'egressProxy needs mode ALLOW_ANY')]);
  });
});

describe('VirtualService delegate and exportTo', () => {
  it('a delegating route names a valid VirtualService and namespace, and does nothing else', () => {
    expect(
      errorsOf('VirtualService', {
        hosts: ['a'],
        http: [{ delegate: { name: 'Bad_Name', namespace: 'Bad_NS' } }],
      }),
    ).toEqual([
      error('spec.http[0].delegate.name', expect.stringContaining('"Bad_Name" is not a valid name')),
      error('spec.http[0].delegate.namespace', expect.stringContaining('"Bad_NS" is not a valid namespace')),
    ]);
    expect(
      errorsOf('VirtualService', {
        hosts: ['a'],
        http: [{ delegate: { name: 'd' }, route: [{ destination: { host: 'x' } }] }],
      }),
    ).toEqual([
      error(
        'spec.http[0]',
        'only one of route, redirect, directResponse or delegate may be set, found route and delegate',
      ),
    ]);
  });

  it('a delegate (no hosts) has no regex matches, no gateways and no tcp routes', () => {
    expect(
      errorsOf('VirtualService', {
        http: [{ match: [{ headers: { x: { regex: 'a.*' } } }], route: [{ destination: { host: 'x' } }] }],
      }),
    ).toEqual([
      error(
        'spec.http[0].match[0].headers.x.regex',
        'regex matches are not supported in delegating or delegate routes',
      ),
    ]);
    expect(
      errorsOf('VirtualService', { gateways: ['gw'], http: [{ route: [{ destination: { host: 'x' } }] }] }),
    ).toEqual([
      error(
        'spec.hosts',
        'hosts is required (only a delegate VirtualService has no hosts, and it cannot name gateways)',
      ),
    ]);
  });

  it('exportTo: ".", "*" or namespaces, "~" only for ServiceEntries', () => {
    const vs = { hosts: ['a'], http: [{ route: [{ destination: { host: 'x' } }] }] };
    expect(errorsOf('VirtualService', { ...vs, exportTo: ['~'] })[0]!.path).toBe('spec.exportTo');
    expect(errorsOf('DestinationRule', { host: 'a', exportTo: ['*', 'team'] })).toEqual([
      error('spec.exportTo', '"*" exports to every namespace and cannot be combined with other entries'),
    ]);
    expect(
      errorsOf('ServiceEntry', {
        hosts: ['a.example.com'],
        ports: [{ number: 80, name: 'http', protocol: 'HTTP' }],
        resolution: 'DNS',
        exportTo: ['~'],
      }),
    ).toEqual([]);
  });
});
