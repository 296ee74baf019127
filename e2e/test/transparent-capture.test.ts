import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { iptablesArgs } from '@mizzen/inject';
import { generateTokenSecret, mintWorkloadToken } from '@mizzen/pki';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NetworkLab } from '../src/netns.js';
import { appEntry } from '../src/processes.js';

/**
 * Transparent capture for real, configured by pilot end to end. Three network
 * namespaces joined by veth pairs (addresses 10.253.x.x exist only inside them):
 *
 *   client ns 10.253.0.1 ──── 10.253.0.2 server ns
 *        │ 10.253.1.2              │ 10.253.2.2
 *        └──── control ns ─────────┘
 *              10.253.1.1 / 10.253.2.1: pilot (xDS) and citadel (certificates)
 *
 * Client and server namespaces get the rules `sidecar-agent iptables` writes
 * (with the arguments the injector gives its init container) and a sidecar-agent in `--capture-mode
 * iptables` running as uid 1337, as the injector sets them up: no ports
 * declared, a workload certificate from citadel. An unmodified curl (and a
 * plain TCP client) in the client namespace calls service VIPs; the path is
 * client app → iptables → client sidecar (the VirtualService pilot
 * translated) → mutual TLS → iptables → the server sidecar's virtualInbound
 * (pilot found the server's ports in the registry by its IP) → the server
 * app, which sees the connection come from 127.0.0.6 as in an Istio pod.
 */
const node = process.execPath;
const agent = appEntry('@mizzen/sidecar-agent');
const pilot = appEntry('@mizzen/pilot');
const citadel = appEntry('@mizzen/citadel');

const CLIENT_IP = '10.253.0.1';
const SERVER_IP = '10.253.0.2';
const SERVER_ETH1 = '10.253.2.2';
const WEB_VIP = '10.253.100.10';
const ECHO_VIP = '10.253.100.20';
const CONTROL_FOR_CLIENT = '10.253.1.1';
const CONTROL_FOR_SERVER = '10.253.2.1';

/** The server workload's endpoints carry its sidecar's tlsMode label and service account: callers speak mTLS to it. */
const SERVER_ENDPOINT = `{ app: web, security.istio.io/tlsMode: istio }`;
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
    - address: ${SERVER_IP}
      ports: { http: 8081 }
      labels: { app: web, version: v1, security.istio.io/tlsMode: istio }
      serviceAccount: web
    - address: ${SERVER_IP}
      ports: { http: 8082 }
      labels: { app: web, version: v2, security.istio.io/tlsMode: istio }
      serviceAccount: web
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
    - { address: ${SERVER_IP}, labels: ${SERVER_ENDPOINT}, serviceAccount: web }
---
# The server's service ports take mutual TLS only; any other port (7000, which no
# service declares) passes through to the app, plaintext allowed.
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: web, namespace: default }
spec:
  selector: { matchLabels: { app: web } }
  mtls: { mode: PERMISSIVE }
  portLevelMtls:
    8081: { mode: STRICT }
    8082: { mode: STRICT }
    9000: { mode: STRICT }
`;

/**
 * The server pod's applications, listening on all addresses as apps in an
 * Istio pod must: two HTTP versions on the service's target ports, a TCP echo,
 * and an HTTP port no service declares.
 */
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
      .listen(port, '0.0.0.0', r),
  );
await web('v1', 8081);
await web('v2', 8082);
await web('undeclared', 7000);
await new Promise((r) =>
  net
    .createServer((s) => s.on('data', (d) => s.write('echo from ' + s.remoteAddress + ': ' + d)))
    .listen(9000, '0.0.0.0', r),
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

describe('transparent capture through two sidecars configured by pilot (needs root: creates network namespaces, veth pairs and iptables rules)', () => {
  const lab = new NetworkLab('mzcap');
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-capture-'));
  const dir = path.join(root, 'config');
  const state = path.join(root, 'state');
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

  /**
   * HTTP status of a URL from inside a namespace, as root. In a pod's own
   * namespace that is an app's request (captured unless it is to the pod's own
   * address); from the control namespace, a caller without a sidecar.
   */
  const status = (ns: string, url: string) => {
    try {
      return lab
        .run(ns, 'curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '3', url])
        .trim();
    } catch {
      return 'unreachable';
    }
  };

  beforeAll(async () => {
    NetworkLab.requirements(['ip', 'iptables', 'iptables-save', 'iptables-restore', 'curl', 'setpriv']);
    for (const f of [agent, pilot, citadel])
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
      { ns: control, dev: 'to-client', cidr: `${CONTROL_FOR_CLIENT}/24` },
      { ns: client, dev: 'eth1', cidr: '10.253.1.2/24' },
    );
    lab.link(
      { ns: control, dev: 'to-server', cidr: `${CONTROL_FOR_SERVER}/24` },
      { ns: server, dev: 'eth1', cidr: `${SERVER_ETH1}/24` },
    );
    // Service VIPs are routable from the client, as a cluster's service range is; nothing answers on them.
    lab.run(client, 'ip', ['route', 'add', '10.253.100.0/24', 'via', SERVER_IP]);

    // The init container's job, in both pods.
    // What the injector's mizzen-init container runs in a pod with no traffic annotations (libs/inject).
    for (const ns of [client, server]) lab.run(ns, node, [agent, ...iptablesArgs({})]);

    fs.mkdirSync(dir);
    fs.mkdirSync(state);
    fs.writeFileSync(path.join(dir, 'mesh.yaml'), MESH_CONFIG);

    // Citadel and its token key; each sidecar gets a token for its service account (the projected token in a pod),
    // readable by the proxy's uid only.
    const tokenKey = generateTokenSecret();
    fs.writeFileSync(path.join(state, 'token-key'), tokenKey, { mode: 0o600 });
    fs.chmodSync(root, 0o755);
    const token = async (name: string, serviceAccount: string) => {
      const file = path.join(root, `${name}.jwt`);
      fs.writeFileSync(
        file,
        await mintWorkloadToken(tokenKey, { namespace: 'default', serviceAccount, ttlSeconds: 3600 }),
        { mode: 0o600 },
      );
      fs.chownSync(file, 1337, 1337);
      return file;
    };
    lab.start(control, 'citadel', node, [
      citadel,
      ...['--host', '0.0.0.0', '--grpc-port', '8060', '--http-port', '15016'],
      ...['--ca-dir', path.join(state, 'ca'), '--token-key', path.join(state, 'token-key')],
      // Its gRPC certificate is for the addresses the pods reach it by.
      ...['--grpc-tls-names', `${CONTROL_FOR_CLIENT},${CONTROL_FOR_SERVER},127.0.0.1`],
    ]);
    await waitFor('citadel ready', () => status(control, 'http://127.0.0.1:15016/ready') === '200', 30_000);
    // The mesh root, readable by the proxies' uid, as the istio-ca-root-cert ConfigMap is mounted in a pod.
    const caRoot = path.join(root, 'root-cert.pem');
    fs.copyFileSync(path.join(state, 'ca', 'root-cert.pem'), caRoot);
    fs.chmodSync(caRoot, 0o644);
    lab.start(control, 'pilot', node, [
      pilot,
      ...['--host', '0.0.0.0', '--xds-port', '15010', '--http-port', '15014', '--config-dir', dir],
      ...['--store', path.join(state, 'store.json'), '--registrations', path.join(state, 'reg.json')],
      ...['--citadel-url', 'http://127.0.0.1:15016'],
    ]);
    lab.start(server, 'backends', node, ['--input-type=module', '-e', BACKENDS]);
    // As the injector runs them: pod name, namespace, service account, pod IP and labels; no ports.
    const sidecar = async (ip: string, control: string, workload: string, labels: string) => [
      agent,
      ...['--pilot', `${control}:15010`, '--workload', workload, '--namespace', 'default', '--ip', ip],
      ...['--service-account', workload, '--labels', labels],
      ...['--capture-mode', 'iptables', '--admin-port', '15000', '--health-port', '15021'],
      ...['--ca-address', `${control}:8060`, '--ca-token-file', await token(workload, workload)],
      ...['--ca-root-cert', caRoot],
    ];
    lab.start(
      client,
      'client-sidecar',
      node,
      await sidecar(CLIENT_IP, CONTROL_FOR_CLIENT, 'client', 'app=client'),
      {
        uid: 1337,
      },
    );
    lab.start(
      server,
      'server-sidecar',
      node,
      await sidecar(SERVER_IP, CONTROL_FOR_SERVER, 'web', 'app=web'),
      {
        uid: 1337,
      },
    );

    await waitFor(
      'both sidecars ready (certificates from citadel, config from pilot applied)',
      () =>
        status(client, `http://${CLIENT_IP}:15021/healthz/ready`) === '200' &&
        status(server, `http://${SERVER_IP}:15021/healthz/ready`) === '200',
      40_000,
    );
  }, 90_000);

  afterAll(async () => {
    await lab.destroy();
    fs.rmSync(root, { recursive: true, force: true });
    expect(lab.remaining()).toEqual([]);
  }, 20_000);

  interface Answer {
    version: string;
    remote: string;
    headers: Record<string, string>;
  }

  /** An unmodified curl in the client pod: no proxy settings, just the service address. */
  const curl = (url: string, headers: string[] = []): Answer => {
    const args = ['-sS', '--fail', '--max-time', '5', ...headers.flatMap((h) => ['-H', h]), url];
    try {
      return JSON.parse(lab.run(client, 'curl', args)) as Answer;
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${lab.outputs()}`);
    }
  };

  it('routes plain HTTP to a service VIP by the VirtualService header match, over mTLS to the server sidecar', () => {
    const plain = curl(`http://${WEB_VIP}:8080/hello`);
    expect(plain.version).toBe('v1');
    const blue = curl(`http://${WEB_VIP}:8080/hello`, ['x-variant: blue']);
    expect(blue.version).toBe('v2');
    for (const r of [plain, blue]) {
      // The client sidecar's route (pilot's virtual host counts attempts) ...
      expect(r.headers['x-envoy-attempt-count']).toBe('1');
      // ... mutual TLS between the sidecars: the server sidecar tells the app who called ...
      expect(r.headers['x-forwarded-client-cert']).toContain(
        'URI=spiffe://cluster.local/ns/default/sa/client',
      );
      // ... and its virtualInbound delivered to the app's own address from 127.0.0.6, as Istio's inbound clusters do.
      expect(r.remote).toBe('127.0.0.6');
      expect(r.headers.host).toBe(`${WEB_VIP}:8080`);
    }
  });

  it('carries plain TCP to a service VIP through both sidecars, over mTLS', () => {
    const answer = lab.run(client, node, ['--input-type=module', '-e', TCP_CLIENT, ECHO_VIP, '9000', 'ping']);
    expect(answer).toBe('echo from 127.0.0.6: ping');
  });

  it("enforces the server's PeerAuthentication: STRICT service ports refuse plaintext, other ports pass through", () => {
    // A caller without a sidecar (the control namespace) reaches the server pod in plaintext: refused on a STRICT port ...
    expect(status(control, `http://${SERVER_ETH1}:8081/`)).not.toBe('200');
    // ... while port 7000, which no service declares, takes the PERMISSIVE passthrough to the app.
    const undeclared = JSON.parse(
      lab.run(control, 'curl', ['-sS', '--fail', '--max-time', '5', `http://${SERVER_ETH1}:7000/`]),
    ) as Answer;
    expect(undeclared.version).toBe('undeclared');
    expect(undeclared.remote).toBe('127.0.0.6');
  });

  it('the connections really were redirected by the rules (nat counters)', () => {
    const packets = (ns: string, chain: string) => {
      const out = lab.run(ns, 'iptables', ['-t', 'nat', '-L', chain, '-v', '-n', '-x']);
      const line = out.split('\n').find((l) => /^\s*\d+\s+\d+\s+REDIRECT\s/.test(l)) ?? '';
      return Number(line.trim().split(/\s+/)[0] ?? 0);
    };
    expect(packets(client, 'ISTIO_REDIRECT')).toBeGreaterThan(0);
    expect(packets(server, 'ISTIO_IN_REDIRECT')).toBeGreaterThan(0);
  });
});
