import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetworkLab } from '../src/netns.js';
import { appEntry } from '../src/processes.js';

/**
 * Transparent capture for real. Three network namespaces joined by veth
 * pairs (addresses 10.253.x.x exist only inside them):
 *
 *   client ns 10.253.0.1 ──── 10.253.0.2 server ns
 *        │ 10.253.1.2              │ 10.253.2.2
 *        └──── control ns ─────────┘
 *              10.253.1.1 pilot (xDS for the client sidecar)
 *              10.253.2.1 a fixed-config xDS server for the server sidecar
 *
 * Client and server namespaces get the rules `sidecar-agent iptables` writes
 * (Istio's init-container flags) and a sidecar-agent in `--capture-mode
 * iptables` running as uid 1337. An unmodified curl (and a plain TCP client)
 * in the client namespace calls service VIPs; the client sidecar routes by
 * the VirtualService pilot translated, the server sidecar's virtualInbound
 * dispatches by destination port to backends listening on the server's
 * loopback only. Pilot does not generate Kubernetes-mode inbound listeners
 * yet, so the server sidecar's config (Istio's virtualInbound shape) comes
 * from the fixed-config xDS server.
 */
const here = path.dirname(fileURLToPath(import.meta.url));
const node = process.execPath;
const agent = appEntry('@mizzen/sidecar-agent');
const pilot = appEntry('@mizzen/pilot');
const staticXds = path.resolve(here, '..', 'dist', 'static-xds.js');

const CLIENT_IP = '10.253.0.1';
const SERVER_IP = '10.253.0.2';
const WEB_VIP = '10.253.100.10';
const ECHO_VIP = '10.253.100.20';
const PILOT = '10.253.1.1';
const SERVER_XDS = '10.253.2.1';
const SERVER_NODE = `sidecar~${SERVER_IP}~web.default~default.svc.cluster.local`;

/** What istio-init runs in an injected pod. */
const INIT_FLAGS = [
  '-p',
  '15001',
  '-z',
  '15006',
  '-u',
  '1337',
  '-g',
  '1337',
  '-m',
  'REDIRECT',
  '-i',
  '*',
  '-x',
  '',
];
const INIT_INBOUND = ['-b', '*', '-d', '15090,15021,15020'];

const MESH_CONFIG = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: web, namespace: default }
spec:
  hosts: [web.default.svc.cluster.local]
  addresses: [${WEB_VIP}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 8080, name: http, protocol: HTTP }]
  endpoints:
    - { address: ${SERVER_IP}, ports: { http: 8081 }, labels: { app: web, version: v1 } }
    - { address: ${SERVER_IP}, ports: { http: 8082 }, labels: { app: web, version: v2 } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: web, namespace: default }
spec:
  host: web.default.svc.cluster.local
  subsets:
    - { name: v1, labels: { version: v1 } }
    - { name: v2, labels: { version: v2 } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: web, namespace: default }
spec:
  hosts: [web.default.svc.cluster.local]
  http:
    - match:
        - headers:
            x-variant:
              exact: blue
      route:
        - destination: { host: web.default.svc.cluster.local, subset: v2 }
    - route:
        - destination: { host: web.default.svc.cluster.local, subset: v1 }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: echo, namespace: default }
spec:
  hosts: [echo.default.svc.cluster.local]
  addresses: [${ECHO_VIP}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9000, name: tcp-echo, protocol: TCP }]
  endpoints:
    - { address: ${SERVER_IP} }
`;

const HCM =
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const TCP = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';
const ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';
const ORIGINAL_DST = 'type.googleapis.com/envoy.extensions.filters.listener.original_dst.v3.OriginalDst';

const local = (name: string, port: number) => ({
  name,
  type: 'STATIC',
  connect_timeout: '2s',
  load_assignment: {
    cluster_name: name,
    endpoints: [
      {
        lb_endpoints: [
          { endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } },
        ],
      },
    ],
  },
});

/** Istio's Kubernetes-mode inbound listener: 15006, original_dst, one filter chain per destination port. */
function serverSidecarConfig() {
  const httpChain = (port: number, backendPort: number) => ({
    name: `inbound|${port}||`,
    filter_chain_match: { destination_port: port },
    filters: [
      {
        name: 'envoy.filters.network.http_connection_manager',
        typed_config: {
          '@type': HCM,
          stat_prefix: `inbound_0.0.0.0_${port}`,
          route_config: {
            name: `inbound|${port}||`,
            virtual_hosts: [
              {
                name: `inbound|http|${port}`,
                domains: ['*'],
                routes: [
                  {
                    match: { prefix: '/' },
                    route: { cluster: `inbound|${backendPort}||`, timeout: '0s' },
                    request_headers_to_add: [
                      {
                        header: { key: 'x-inbound-listener', value: 'virtualInbound' },
                        append_action: 'OVERWRITE_IF_EXISTS_OR_ADD',
                      },
                    ],
                  },
                ],
              },
            ],
          },
          http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } }],
        },
      },
    ],
  });
  return {
    node: SERVER_NODE,
    listeners: [
      {
        name: 'virtualInbound',
        address: { socket_address: { address: '0.0.0.0', port_value: 15006 } },
        traffic_direction: 'INBOUND',
        listener_filters: [
          { name: 'envoy.filters.listener.original_dst', typed_config: { '@type': ORIGINAL_DST } },
        ],
        filter_chains: [
          httpChain(8081, 18081),
          httpChain(8082, 18082),
          {
            name: 'inbound|9000||',
            filter_chain_match: { destination_port: 9000 },
            filters: [
              {
                name: 'envoy.filters.network.tcp_proxy',
                typed_config: { '@type': TCP, stat_prefix: 'inbound|9000||', cluster: 'inbound|19000||' },
              },
            ],
          },
        ],
      },
    ],
    clusters: [
      local('inbound|18081||', 18081),
      local('inbound|18082||', 18082),
      local('inbound|19000||', 19000),
    ],
  };
}

/** The server pod's applications: two HTTP versions and a TCP echo, on loopback only. */
const BACKENDS = `
import http from 'node:http';
import net from 'node:net';
const web = (version, port) =>
  new Promise((r) =>
    http
      .createServer((req, res) => {
        const body = JSON.stringify({ version, remote: req.socket.remoteAddress, headers: req.headers });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(body);
      })
      .listen(port, '127.0.0.1', r),
  );
await web('v1', 18081);
await web('v2', 18082);
await new Promise((r) =>
  net
    .createServer((s) => s.on('data', (d) => s.write('echo from ' + s.remoteAddress + ': ' + d)))
    .listen(19000, '127.0.0.1', r),
);
console.log('backends ready');
`;

/** A plain TCP client: connect, send a line, print the answer. */
const TCP_CLIENT = `
import net from 'node:net';
const [host, port, line] = process.argv.slice(1);
const s = net.connect(Number(port), host);
const timer = setTimeout(() => { console.error('no answer'); process.exit(1); }, 5000);
s.on('connect', () => s.write(line));
s.on('data', (d) => { clearTimeout(timer); process.stdout.write(d); s.end(); });
s.on('error', (e) => { console.error(e.message); process.exit(1); });
`;

describe('transparent capture through two sidecars (needs root: creates network namespaces, veth pairs and iptables rules)', () => {
  const lab = new NetworkLab('mzcap');
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-capture-'));
  const dir = path.join(root, 'config');
  const pilotState = path.join(root, 'pilot');
  let client = '';
  let server = '';
  let control = '';

  const waitFor = async (what: string, check: () => boolean, ms: number) => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (check()) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error(`timed out after ${ms} ms waiting for ${what}\n${lab.outputs()}`);
  };

  /** HTTP status of a URL from inside a namespace, as root (so never captured by the proxy's own rules). */
  const status = (ns: string, url: string) => {
    try {
      return lab
        .run(ns, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '2', url])
        .trim();
    } catch {
      return 'unreachable';
    }
  };

  beforeAll(async () => {
    NetworkLab.requirements(['ip', 'iptables', 'iptables-save', 'iptables-restore', 'curl', 'setpriv']);
    for (const f of [agent, pilot, staticXds])
      if (!fs.existsSync(f)) throw new Error(`build first (npx nx run-many -t build): ${f} is missing`);
    lab.removeStale();
    client = lab.namespace('client');
    server = lab.namespace('server');
    control = lab.namespace('control');
    lab.link(
      { ns: client, dev: 'eth0', cidr: `${CLIENT_IP}/24` },
      { ns: server, dev: 'eth0', cidr: `${SERVER_IP}/24` },
    );
    lab.link(
      { ns: control, dev: 'to-client', cidr: `${PILOT}/24` },
      { ns: client, dev: 'eth1', cidr: '10.253.1.2/24' },
    );
    lab.link(
      { ns: control, dev: 'to-server', cidr: `${SERVER_XDS}/24` },
      { ns: server, dev: 'eth1', cidr: '10.253.2.2/24' },
    );
    // Service VIPs are routable from the client, as a cluster's service range is; nothing answers on them.
    lab.run(client, 'ip', ['route', 'add', '10.253.100.0/24', 'via', SERVER_IP]);

    // The init container's job, in both pods.
    for (const ns of [client, server]) lab.run(ns, node, [agent, 'iptables', ...INIT_FLAGS, ...INIT_INBOUND]);

    fs.mkdirSync(dir);
    fs.mkdirSync(pilotState);
    fs.writeFileSync(path.join(dir, 'mesh.yaml'), MESH_CONFIG);
    const serverConfig = path.join(root, 'server-sidecar.json');
    fs.writeFileSync(serverConfig, JSON.stringify(serverSidecarConfig()));
    const pilotArgs = [
      ...['--host', '0.0.0.0', '--xds-port', '15010', '--http-port', '15014', '--config-dir', dir],
      ...[
        '--store',
        path.join(pilotState, 'store.json'),
        '--registrations',
        path.join(pilotState, 'reg.json'),
      ],
    ];
    lab.start(control, 'pilot', node, [pilot, ...pilotArgs]);
    lab.start(control, 'static-xds', node, [staticXds, SERVER_XDS, '15012', serverConfig]);
    lab.start(server, 'backends', node, ['--input-type=module', '-e', BACKENDS]);
    const sidecar = (ip: string, xds: string, workload: string) => [
      agent,
      ...['--pilot', xds, '--workload', workload, '--namespace', 'default', '--ip', ip],
      ...['--capture-mode', 'iptables', '--admin-port', '15000', '--health-port', '15021'],
    ];
    lab.start(client, 'client-sidecar', node, sidecar(CLIENT_IP, `${PILOT}:15010`, 'client'), { uid: 1337 });
    lab.start(server, 'server-sidecar', node, sidecar(SERVER_IP, `${SERVER_XDS}:15012`, 'web'), {
      uid: 1337,
    });

    await waitFor(
      'both sidecars ready (config from pilot and the fixed-config xDS server applied)',
      () =>
        status(client, `http://${CLIENT_IP}:15021/healthz/ready`) === '200' &&
        status(server, `http://${SERVER_IP}:15021/healthz/ready`) === '200',
      40_000,
    );
  }, 60_000);

  afterAll(async () => {
    await lab.destroy();
    fs.rmSync(root, { recursive: true, force: true });
    expect(lab.remaining()).toEqual([]);
  }, 20_000);

  /** An unmodified curl in the client pod: no proxy settings, just the service address. */
  const curl = (url: string, headers: string[] = []) => {
    const args = ['-sS', '--fail', '--max-time', '5', ...headers.flatMap((h) => ['-H', h]), url];
    try {
      return JSON.parse(lab.run(client, 'curl', args)) as {
        version: string;
        remote: string;
        headers: Record<string, string>;
      };
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${lab.outputs()}`);
    }
  };

  it('routes plain HTTP to a service VIP by the VirtualService header match, through both sidecars', () => {
    const plain = curl(`http://${WEB_VIP}:8080/hello`);
    expect(plain.version).toBe('v1');
    const blue = curl(`http://${WEB_VIP}:8080/hello`, ['x-variant: blue']);
    expect(blue.version).toBe('v2');
    for (const r of [plain, blue]) {
      // The client sidecar's route (pilot's virtual host counts attempts) ...
      expect(r.headers['x-envoy-attempt-count']).toBe('1');
      // ... and the server sidecar's virtualInbound route, which alone reaches the loopback-only backends.
      expect(r.headers['x-inbound-listener']).toBe('virtualInbound');
      expect(r.remote).toBe('127.0.0.1');
      expect(r.headers.host).toBe(`${WEB_VIP}:8080`);
    }
  });

  it('carries plain TCP to a service VIP through both sidecars', () => {
    const answer = lab.run(client, node, ['--input-type=module', '-e', TCP_CLIENT, ECHO_VIP, '9000', 'ping']);
    expect(answer).toBe('echo from 127.0.0.1: ping');
  });

  it('the connections really were redirected by the rules (nat counters), and inbound capture is in force', () => {
    const packets = (ns: string, chain: string) => {
      const out = lab.run(ns, 'iptables', ['-t', 'nat', '-L', chain, '-v', '-n', '-x']);
      const line = out.split('\n').find((l) => /^\s*\d+\s+\d+\s+REDIRECT\s/.test(l)) ?? '';
      return Number(line.trim().split(/\s+/)[0] ?? 0);
    };
    expect(packets(client, 'ISTIO_REDIRECT')).toBeGreaterThan(0);
    expect(packets(server, 'ISTIO_IN_REDIRECT')).toBeGreaterThan(0);
    // A port the server sidecar has no filter chain for is captured too, and closed: nothing bypasses it.
    expect(status(client, `http://${SERVER_IP}:18081/`)).not.toBe('200');
  });
});
