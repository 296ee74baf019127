import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backend, ProxyClient, type Reply, startBackend } from '../src/http.js';
import { eventually } from '../src/load.js';
import { type SidecarHandle, TestMesh } from '../src/mesh.js';
import { type Recorder, startRecorder } from '../src/recorder.js';
import { metricSum } from '../src/stats.js';
import { connectThroughSidecar, roundTrip } from '../src/tcp.js';

/**
 * DestinationRule fields with Istio's YAML, through pilot and a real client
 * sidecar to real servers registered as ServiceEntry endpoints. A server
 * whose endpoint is labelled `security.istio.io/tlsMode: istio` stands in for
 * a peer sidecar (it takes HTTP/1.1 and HTTP/2 cleartext and records which
 * connection and protocol each request came on).
 */

interface Endpoint {
  address?: string;
  port: number;
  labels?: Record<string, string>;
}

/** A ServiceEntry for `name` on `port` with these endpoints. */
function serviceEntry(name: string, port: number, endpoints: Endpoint[], protocol = 'HTTP'): string {
  const portName = protocol === 'TCP' ? 'tcp' : 'http';
  const eps = endpoints
    .map((e) => {
      const labels = Object.entries({ app: name, ...e.labels })
        .map(([k, v]) => `${k}: "${v}"`)
        .join(', ');
      return `    - { address: ${e.address ?? '127.0.0.1'}, ports: { ${portName}: ${e.port} }, labels: { ${labels} } }`;
    })
    .join('\n');
  return `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${name}, namespace: default }
spec:
  hosts: [${name}.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: ${port}, name: ${portName}, protocol: ${protocol} }]
  endpoints:
${eps}
`;
}

const SIDECAR = { 'security.istio.io/tlsMode': 'istio' };

/** Rules that send no retry, so each failure reaches outlier detection as it happened. */
const noRetries = (host: string) => `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${host}, namespace: default }
spec:
  hosts: [${host}]
  http: [{ route: [{ destination: { host: ${host} } }], retries: { attempts: 0 } }]
`;

const RULES = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: up-never, namespace: default }
spec:
  host: up-never
  trafficPolicy: { connectionPool: { http: { h2UpgradePolicy: DO_NOT_UPGRADE } } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: up-always, namespace: default }
spec:
  host: up-always
  trafficPolicy: { connectionPool: { http: { h2UpgradePolicy: UPGRADE } } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: up-client, namespace: default }
spec:
  host: up-client
  trafficPolicy: { connectionPool: { http: { useClientProtocol: true } } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: per-conn, namespace: default }
spec:
  host: per-conn
  trafficPolicy: { connectionPool: { http: { maxRequestsPerConnection: 2 } } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: streams, namespace: default }
spec:
  host: streams
  trafficPolicy: { connectionPool: { http: { maxConcurrentStreams: 2 } } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: lifetime, namespace: default }
spec:
  host: lifetime
  trafficPolicy: { connectionPool: { tcp: { maxConnectionDuration: 1s } } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: idle, namespace: default }
spec:
  host: idle
  trafficPolicy: { connectionPool: { http: { idleTimeout: 1s } } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: keepalive, namespace: default }
spec:
  host: keepalive
  trafficPolicy: { connectionPool: { tcp: { tcpKeepalive: { time: 7s, interval: 3s, probes: 4 } } } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: lb, namespace: default }
spec:
  host: lb
  subsets:
    - { name: random, labels: { app: lb }, trafficPolicy: { loadBalancer: { simple: RANDOM } } }
    - { name: round-robin, labels: { app: lb }, trafficPolicy: { loadBalancer: { simple: ROUND_ROBIN } } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: lb, namespace: default }
spec:
  hosts: [lb]
  http:
    - match: [{ headers: { x-lb: { exact: random } } }]
      route: [{ destination: { host: lb, subset: random } }]
    - route: [{ destination: { host: lb, subset: round-robin } }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: least, namespace: default }
spec:
  host: least
  trafficPolicy: { loadBalancer: { simple: LEAST_REQUEST } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: passthrough, namespace: default }
spec:
  host: passthrough
  trafficPolicy: { loadBalancer: { simple: PASSTHROUGH } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: by-ip, namespace: default }
spec:
  host: by-ip
  trafficPolicy: { loadBalancer: { consistentHash: { useSourceIp: true } } }
---
# The hash key for this port only (portLevelSettings), by query parameter.
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: by-query, namespace: default }
spec:
  host: by-query
  trafficPolicy:
    portLevelSettings:
      - port: { number: 8000 }
        loadBalancer: { consistentHash: { httpQueryParameterName: user } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: by-cookie, namespace: default }
spec:
  host: by-cookie
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: { name: session, path: /, ttl: 60s, attributes: [{ name: SameSite, value: Lax }, { name: Secure }] }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: tables, namespace: default }
spec:
  host: tables
  subsets:
    - name: maglev
      labels: { app: tables }
      trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: x-user, maglev: { tableSize: 3 } } } }
    - name: ring
      labels: { app: tables }
      trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: x-user, ringHash: { minimumRingSize: 4096 } } } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: tables, namespace: default }
spec:
  hosts: [tables]
  http:
    - match: [{ headers: { x-table: { exact: maglev } } }]
      route: [{ destination: { host: tables, subset: maglev } }]
    - route: [{ destination: { host: tables, subset: ring } }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: by-tier, namespace: default }
spec:
  host: by-tier
  trafficPolicy:
    loadBalancer: { localityLbSetting: { failoverPriority: [tier] } }
    outlierDetection: { consecutive5xxErrors: 1, interval: 200ms, baseEjectionTime: 2s, maxEjectionPercent: 100 }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: gateway-errors, namespace: default }
spec:
  host: gateway-errors
  trafficPolicy:
    outlierDetection:
      { consecutive5xxErrors: 0, consecutiveGatewayErrors: 2, interval: 200ms, baseEjectionTime: 30s, maxEjectionPercent: 100 }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: min-health, namespace: default }
spec:
  host: min-health
  trafficPolicy:
    outlierDetection:
      { consecutiveGatewayErrors: 1, interval: 200ms, baseEjectionTime: 30s, maxEjectionPercent: 100, minHealthPercent: 50 }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: tcp-idle, namespace: default }
spec:
  host: tcp-idle
  trafficPolicy: { connectionPool: { tcp: { idleTimeout: 1s } } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: slow-connect, namespace: default }
spec:
  host: slow-connect
  trafficPolicy: { connectionPool: { tcp: { connectTimeout: 300ms } } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: retry-budget, namespace: default }
spec:
  host: retry-budget
  trafficPolicy: { connectionPool: { http: { maxRetries: 1 } } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: retry-budget, namespace: default }
spec:
  hosts: [retry-budget]
  http: [{ route: [{ destination: { host: retry-budget } }], retries: { attempts: 3, retryOn: 5xx } }]
---
# Retries in flight may be half of the requests in flight (at least one).
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: budget-pct, namespace: default }
spec:
  host: budget-pct
  trafficPolicy: { retryBudget: { percent: 50, minRetryConcurrency: 1 } }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: budget-pct, namespace: default }
spec:
  hosts: [budget-pct]
  http: [{ route: [{ destination: { host: budget-pct } }], retries: { attempts: 1, retryOn: 5xx } }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: haproxy, namespace: default }
spec:
  host: haproxy
  trafficPolicy: { proxyProtocol: { version: V1 } }
`;

/** The seconds left on a connection's keepalive timer, as `ss` shows it for connections to `port`. */
function keepaliveSecondsTo(port: number): number[] {
  const out = execFileSync('ss', ['-tnoH', 'state', 'established', `( dport = :${port} )`]).toString();
  return [...out.matchAll(/timer:\(keepalive,([^,]+),/g)].map(([, t]) => {
    const min = /^(\d+)min/.exec(t!);
    return min ? Number(min[1]) * 60 : Number.parseFloat(t!);
  });
}

/** A GET to the client sidecar's outbound port from a given local address (the caller's source IP). */
function getFrom(outbound: number, localAddress: string, url: string): Promise<Reply> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: '127.0.0.1',
        port: outbound,
        localAddress,
        path: url,
        headers: { host: target.host },
        agent: false,
      },
      (res) => {
        let body = '';
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/**
 * A listening socket that never accepts (its process's event loop is
 * blocked): once the kernel's small accept queue is full, new connections
 * get no answer to their SYN and hang until the caller's connect timeout.
 */
async function unansweredListener(
  mesh: TestMesh,
): Promise<{ port: number; fill: () => Promise<net.Socket[]> }> {
  const script = `
    const server = require('node:net').createServer();
    server.listen({ port: 0, host: '127.0.0.1', backlog: 1 }, () => {
      process.stdout.write(server.address().port + '\\n');
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 600000);
    });`;
  const proc = mesh.procs.start('unanswered listener', '-e', [script]);
  let port = 0;
  await eventually('the listener up', async () => {
    port = Number.parseInt(proc.output(), 10) || 0;
    return port > 0;
  });
  // Connections the kernel completes on its own until the queue is full; they stay open so it stays full.
  const fill = async () => {
    const held: net.Socket[] = [];
    for (let i = 0; i < 4; i++) {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', () => {});
      held.push(s);
    }
    await sleep(200);
    return held;
  };
  return { port, fill };
}

/** Two servers on the same port of two loopback addresses: where a caller connects is where PASSTHROUGH must send it. */
async function twinBackends(mesh: TestMesh): Promise<{ port: number; a: Backend; b: Backend }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const port = await mesh.ports.take();
    const opened: Backend[] = [];
    try {
      for (const [address, version] of [
        ['127.0.0.21', 'a'],
        ['127.0.0.22', 'b'],
      ] as const)
        opened.push(await startBackend('passthrough', version, undefined, { host: address, port }));
      return { port, a: opened[0]!, b: opened[1]! };
    } catch {
      await Promise.all(opened.map((o) => o.close()));
    }
  }
  throw new Error('no port free on both 127.0.0.21 and 127.0.0.22');
}

describe('DestinationRule fields through pilot and a real sidecar', () => {
  const mesh = new TestMesh();
  const recorders: Record<string, Recorder> = {};
  const backends: Record<string, Backend> = {};
  /** Requests budget-pct holds until the test answers them (200), and the attempts each path got. */
  const budgetHeld: { path: string; answer: () => void }[] = [];
  const budgetAttempts = new Map<string, number>();
  const answerHeld = (which: (path: string) => boolean) => {
    for (const h of budgetHeld.filter((x) => which(x.path))) {
      budgetHeld.splice(budgetHeld.indexOf(h), 1);
      h.answer();
    }
  };
  const servers: net.Server[] = [];
  /** Backends that answer with an error: name → status (0: 200). */
  const failing = new Map<string, number>();
  let twins: { port: number; a: Backend; b: Backend };
  let unanswered: { port: number; fill: () => Promise<net.Socket[]> };
  let client: SidecarHandle;
  let http1: ProxyClient;
  /** PROXY headers the PROXY-aware TCP server received. */
  const proxyHeaders: Buffer[] = [];
  let forwardProxyRequests: string[] = [];
  let ports: Record<string, number> = {};

  const versionOf = async (url: string, headers: Record<string, string> = {}) => {
    const r = await http1.request(url, headers);
    return r.status === 200 ? (JSON.parse(r.body) as { version: string }).version : `status ${r.status}`;
  };

  beforeAll(async () => {
    for (const n of ['proto', 'perConn', 'streams', 'lifetime', 'idle', 'keepalive', 'meshKeepalive'])
      recorders[n] = await startRecorder();
    const backend = async (name: string, version: string, delayMs = 0) => {
      backends[`${name}-${version}`] = await startBackend(name, version, (_req, res) => {
        const status = failing.get(`${name}-${version}`);
        if (status) {
          res.writeHead(status).end('failing');
          return true;
        }
        if (!delayMs) return false;
        setTimeout(() => res.end(JSON.stringify({ name, version })), delayMs);
        return true;
      });
    };
    for (const v of ['a', 'b']) await backend('lb', v);
    await backend('least', 'slow', 150);
    // Always 503, after a moment: each request wants all its retries while another's are in flight.
    backends['retry-budget-v1'] = await startBackend('retry-budget', 'v1', (_req, res) => {
      setTimeout(() => res.writeHead(503).end('busy'), 300);
      return true;
    });
    // A /fail/ request's first attempt is answered 503 at once; every other attempt waits for the test.
    backends['budget-pct-v1'] = await startBackend('budget-pct', 'v1', (req, res) => {
      const path = req.url ?? '';
      const attempt = (budgetAttempts.get(path) ?? 0) + 1;
      budgetAttempts.set(path, attempt);
      if (path.startsWith('/fail/') && attempt === 1) {
        res.writeHead(503).end('first attempt fails');
        return true;
      }
      budgetHeld.push({ path, answer: () => res.end(JSON.stringify({ name: 'budget-pct', path })) });
      return true;
    });
    await backend('least', 'fast');
    for (const v of ['a', 'b', 'c']) await backend('by-ip', v);
    for (const v of ['a', 'b', 'c']) await backend('by-query', v);
    for (const v of ['a', 'b', 'c']) await backend('by-cookie', v);
    for (const v of ['a', 'b', 'c', 'd', 'e']) await backend('tables', v);
    for (const v of ['gold', 'silver']) await backend('by-tier', v);
    for (const v of ['a', 'b']) await backend('gateway-errors', v);
    for (const v of ['a', 'b', 'c']) await backend('min-health', v);
    twins = await twinBackends(mesh);
    unanswered = await unansweredListener(mesh);

    const echo = net.createServer((s) => s.on('error', () => {}).pipe(s));
    // A forward proxy taking HTTP CONNECT: the DestinationRule's tunnel sends TCP through it.
    const forwardProxy = http.createServer((_req, res) => res.writeHead(405).end());
    forwardProxy.on('connect', (req, socket) => {
      forwardProxyRequests.push(String(req.url));
      const [host, port] = String(req.url).split(':');
      const target = net.connect(Number(port), host, () => {
        socket.write('HTTP/1.1 200 Connection established\r\n\r\n');
        socket.pipe(target).pipe(socket);
      });
      target.on('error', () => socket.destroy());
      socket.on('error', () => target.destroy());
    });
    // A TCP server behind a balancer that speaks the PROXY protocol (v1): it records the header line, then echoes.
    const proxyAware = net.createServer((s) => {
      s.on('error', () => {});
      let buf = Buffer.alloc(0);
      s.on('data', function onData(d: Buffer) {
        buf = Buffer.concat([buf, d]);
        const end = buf.indexOf('\r\n');
        if (end < 0) return;
        s.off('data', onData);
        proxyHeaders.push(buf.subarray(0, end + 2));
        s.write(buf.subarray(end + 2));
        s.pipe(s);
      });
    });
    for (const [name, server] of [
      ['echo', echo],
      ['forwardProxy', forwardProxy],
      ['proxyAware', proxyAware],
    ] as const) {
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      ports[name] = (server.address() as net.AddressInfo).port;
      servers.push(server);
    }
    ports = {
      ...ports,
      tcpIdle: await mesh.ports.take(),
      tunnel: await mesh.ports.take(),
      haproxy: await mesh.ports.take(),
    };

    const each = (
      name: string,
      versions: string[],
      labels: (v: string) => Record<string, string> = () => ({}),
    ) =>
      versions.map((v) => ({ port: backends[`${name}-${v}`]!.port, labels: { version: v, ...labels(v) } }));
    const services = [
      ...['up-default', 'up-never', 'up-client'].map((n) =>
        serviceEntry(n, 8000, [{ port: recorders.proto!.port, labels: SIDECAR }]),
      ),
      // No sidecar at this endpoint: only UPGRADE makes the proxy speak HTTP/2 to it.
      serviceEntry('up-always', 8000, [{ port: recorders.proto!.port }]),
      serviceEntry('per-conn', 8000, [{ port: recorders.perConn!.port, labels: SIDECAR }]),
      serviceEntry('streams', 8000, [{ port: recorders.streams!.port, labels: SIDECAR }]),
      serviceEntry('lifetime', 8000, [{ port: recorders.lifetime!.port, labels: SIDECAR }]),
      serviceEntry('idle', 8000, [{ port: recorders.idle!.port, labels: SIDECAR }]),
      serviceEntry('keepalive', 8000, [{ port: recorders.keepalive!.port }]),
      // No rule of its own: MeshConfig tcpKeepalive applies.
      serviceEntry('mesh-keepalive', 8000, [{ port: recorders.meshKeepalive!.port }]),
      serviceEntry('budget-pct', 8000, each('budget-pct', ['v1'])),
      serviceEntry('lb', 8000, each('lb', ['a', 'b'])),
      serviceEntry('least', 8000, each('least', ['slow', 'fast'])),
      serviceEntry('passthrough', twins.port, [
        { address: '127.0.0.21', port: twins.port },
        { address: '127.0.0.22', port: twins.port },
      ]),
      serviceEntry('by-ip', 8000, each('by-ip', ['a', 'b', 'c'])),
      serviceEntry('by-query', 8000, each('by-query', ['a', 'b', 'c'])),
      serviceEntry('by-cookie', 8000, each('by-cookie', ['a', 'b', 'c'])),
      serviceEntry('tables', 8000, each('tables', ['a', 'b', 'c', 'd', 'e'])),
      serviceEntry(
        'by-tier',
        8000,
        each('by-tier', ['gold', 'silver'], (v) => ({ tier: v })),
      ),
      serviceEntry('gateway-errors', 8000, [
        ...each('gateway-errors', ['a', 'b']),
        // Nothing listens here: every connection is refused (a local-origin gateway error).
        { port: await mesh.ports.take(), labels: { version: 'refused' } },
      ]),
      serviceEntry('min-health', 8000, each('min-health', ['a', 'b', 'c'])),
      serviceEntry('slow-connect', 8000, [{ port: unanswered.port }]),
      serviceEntry('retry-budget', 8000, each('retry-budget', ['v1'])),
      serviceEntry('tcp-idle', ports.tcpIdle!, [{ port: ports.echo! }], 'TCP'),
      serviceEntry('tunnel', ports.tunnel!, [{ port: ports.forwardProxy! }], 'TCP'),
      serviceEntry('haproxy', ports.haproxy!, [{ port: ports.proxyAware! }], 'TCP'),
    ];
    const tunnelRule = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: tunnel, namespace: default }
spec:
  host: tunnel
  trafficPolicy: { tunnel: { protocol: CONNECT, targetHost: 127.0.0.1, targetPort: ${ports.echo} } }
`;
    mesh.writeConfig('services.yaml', services.join('---\n'));
    mesh.writeConfig(
      'rules.yaml',
      [RULES, tunnelRule, ...['by-tier', 'gateway-errors', 'min-health'].map(noRetries)].join('---\n'),
    );
    const meshConfig = path.join(mesh.dir, 'mesh-config.yaml');
    fs.writeFileSync(meshConfig, 'tcpKeepalive: { time: 11s, interval: 2s, probes: 3 }\n');
    await mesh.startPilot(['--mesh-config', meshConfig]);
    client = await mesh.startSidecar({
      workload: 'client',
      service: 'client',
      labels: { app: 'client', tier: 'gold' },
      appPort: await mesh.ports.take(),
    });
    await mesh.waitForSync([client.id], 60_000);
    http1 = new ProxyClient(client.outboundPort);
    await eventually('every service routed', async () => {
      for (const s of ['up-default', 'lb', 'tables', 'min-health'])
        if ((await http1.request(`http://${s}:8000/`)).status !== 200) return s;
      return true;
    });
  });

  afterAll(async () => {
    http1?.close();
    await mesh.stop();
    for (const r of Object.values(recorders)) await r.close();
    await Promise.all(
      [...Object.values(backends), twins?.a, twins?.b].filter(Boolean).map((b) => b!.close()),
    );
    for (const s of servers) s.close();
  });

  it('h2UpgradePolicy: HTTP/2 to a sidecar by default, HTTP/1.1 with DO_NOT_UPGRADE or useClientProtocol, HTTP/2 to any host with UPGRADE', async () => {
    expect(await versionOf('http://up-default:8000/')).toBe('2.0');
    expect(await versionOf('http://up-never:8000/')).toBe('1.1');
    expect(await versionOf('http://up-client:8000/')).toBe('1.1');
    expect(await versionOf('http://up-always:8000/')).toBe('2.0');
  });

  it('maxRequestsPerConnection between sidecars: each HTTP/2 connection carries two requests', async () => {
    const r = recorders.perConn!;
    const from = r.seen.length;
    for (let i = 0; i < 6; i++) expect((await http1.request(`http://per-conn:8000/${i}`)).status).toBe(200);
    expect(r.seen.slice(from).every((x) => x.version === '2.0')).toBe(true);
    expect(r.connections(from)).toBe(3);
  });

  it('maxConcurrentStreams: six requests in flight take three HTTP/2 connections of two streams', async () => {
    const r = recorders.streams!;
    const replies = Array.from({ length: 6 }, (_, i) => http1.request(`http://streams:8000/hold/${i}`));
    await eventually(
      'six requests at the server',
      async () => r.held.length === 6 || `${r.held.length}`,
      10_000,
    );
    expect(r.connections()).toBe(3);
    for (const release of r.held.splice(0)) release();
    expect((await Promise.all(replies)).map((x) => x.status)).toEqual(Array(6).fill(200));
  });

  it('maxConnectionDuration: a connection older than that is not reused and closes once idle; idleTimeout closes idle ones', async () => {
    const life = recorders.lifetime!;
    expect((await http1.request('http://lifetime:8000/a')).status).toBe(200);
    const first = life.seen.at(-1)!.port;
    await sleep(1300);
    expect((await http1.request('http://lifetime:8000/b')).status).toBe(200);
    expect(life.seen.at(-1)!.port).not.toBe(first);
    await eventually('the old connection closed', async () => life.closed.has(first), 5000);

    const idle = recorders.idle!;
    expect((await http1.request('http://idle:8000/a')).status).toBe(200);
    const conn = idle.seen.at(-1)!.port;
    expect(idle.closed.has(conn)).toBe(false);
    await eventually('the idle connection closed', async () => idle.closed.has(conn), 5000);
  });

  it('tcpKeepalive: the upstream connection probes after 7 s idle instead of the mesh’s 11 s', async () => {
    expect((await http1.request('http://keepalive:8000/')).status).toBe(200);
    const timers = keepaliveSecondsTo(recorders.keepalive!.port);
    expect(timers.length).toBeGreaterThan(0);
    for (const t of timers) expect(t).toBeLessThanOrEqual(7);
  });

  it('MeshConfig tcpKeepalive: a service without a rule of its own gets the mesh’s, probing after 11 s idle', async () => {
    expect((await http1.request('http://mesh-keepalive:8000/')).status).toBe(200);
    const timers = keepaliveSecondsTo(recorders.meshKeepalive!.port);
    expect(timers.length).toBeGreaterThan(0);
    // The proxy's own default would be a minute (or none at all).
    for (const t of timers) expect(t).toBeLessThanOrEqual(11);
  });

  it('RANDOM: both endpoints serve, in no fixed order (ROUND_ROBIN alternates strictly)', async () => {
    const sequence = async (headers: Record<string, string>) => {
      const out: string[] = [];
      for (let i = 0; i < 120; i++) out.push(await versionOf('http://lb:8000/', headers));
      return out;
    };
    const repeats = (s: string[]) => s.filter((v, i) => i > 0 && s[i - 1] === v).length;
    const rr = await sequence({});
    expect(repeats(rr)).toBe(0);
    const random = await sequence({ 'x-lb': 'random' });
    const a = random.filter((v) => v === 'a').length;
    expect(a).toBeGreaterThan(30);
    expect(a).toBeLessThan(90);
    // 120 coin tosses without two alike in a row would be a 1 in 2^119 chance.
    expect(repeats(random)).toBeGreaterThan(10);
  });

  it('LEAST_REQUEST: a slow endpoint gets fewer requests under concurrent load', async () => {
    const count: Record<string, number> = {};
    let left = 80;
    const worker = async () => {
      while (left-- > 0) {
        const v = await versionOf('http://least:8000/');
        count[v] = (count[v] ?? 0) + 1;
      }
    };
    await Promise.all(Array.from({ length: 4 }, worker));
    expect((count.slow ?? 0) + (count.fast ?? 0)).toBe(80);
    // Round robin would split 40/40; the busy slow endpoint loses most picks.
    expect(count.slow ?? 0).toBeLessThan(24);
  });

  it('PASSTHROUGH: each request goes to the address the caller connected to, never balanced', async () => {
    const host = `passthrough.default.svc.cluster.local:${twins.port}`;
    for (const [address, version] of [
      ['127.0.0.21', 'a'],
      ['127.0.0.22', 'b'],
    ] as const) {
      for (let i = 0; i < 6; i++) {
        const r = await http1.request(`http://${address}:${twins.port}/`, { host });
        expect(r.status).toBe(200);
        expect(JSON.parse(r.body).version).toBe(version);
      }
    }
  });

  it('consistentHash useSourceIp: each caller address sticks to one endpoint', async () => {
    const seen = new Set<string>();
    for (let i = 10; i < 30; i++) {
      const from = `127.0.0.${i}`;
      const first = JSON.parse((await getFrom(client.outboundPort, from, 'http://by-ip:8000/')).body).version;
      seen.add(first);
      for (let n = 0; n < 3; n++)
        expect(
          JSON.parse((await getFrom(client.outboundPort, from, 'http://by-ip:8000/')).body).version,
        ).toBe(first);
    }
    expect(seen.size).toBeGreaterThan(1);
  });

  it('consistentHash httpQueryParameterName (a port-level setting): each user sticks to one endpoint', async () => {
    const seen = new Set<string>();
    for (let u = 0; u < 40; u++) {
      const first = await versionOf(`http://by-query:8000/?user=u${u}&n=0`);
      seen.add(first);
      for (let n = 1; n < 3; n++)
        expect(await versionOf(`http://by-query:8000/?user=u${u}&n=${n}`)).toBe(first);
    }
    expect(seen.size).toBe(3);
  });

  it('consistentHash httpCookie: a session cookie with its path, TTL and attributes is set, and the session sticks', async () => {
    const seen = new Set<string>();
    const cookies = new Set<string>();
    for (let n = 0; n < 12; n++) {
      // A new session is a new client connection: as Envoy does, the cookie is made from the connection's
      // two addresses, so requests racing on one connection get the same one.
      const browser = new ProxyClient(client.outboundPort);
      const first = await browser.request('http://by-cookie:8000/');
      browser.close();
      const setCookie = String(first.headers['set-cookie']);
      expect(setCookie).toMatch(
        /^session="[0-9a-f]{16}"; Max-Age=60; Path=\/; SameSite=Lax; Secure; HttpOnly$/,
      );
      const cookie = setCookie.split(';')[0]!;
      cookies.add(cookie);
      const version = JSON.parse(first.body).version as string;
      seen.add(version);
      for (let i = 0; i < 3; i++) {
        const again = await http1.request('http://by-cookie:8000/', { cookie });
        expect(JSON.parse(again.body).version).toBe(version);
        expect(again.headers['set-cookie']).toBeUndefined();
      }
    }
    expect(cookies.size, 'one cookie per connection').toBe(12);
    expect(seen.size).toBeGreaterThan(1);
    // Requests on one connection share its cookie.
    const browser = new ProxyClient(client.outboundPort);
    const [a, b] = [
      await browser.request('http://by-cookie:8000/'),
      await browser.request('http://by-cookie:8000/'),
    ];
    browser.close();
    expect(String(a.headers['set-cookie']).split(';')[0]).toBe(String(b.headers['set-cookie']).split(';')[0]);
  });

  it('maglev tableSize 3 sends every key to three of five endpoints; a ring of minimumRingSize 4096 to all five', async () => {
    const endpointsFor = async (table: string) => {
      const seen = new Set<string>();
      for (let u = 0; u < 100; u++) {
        const v = await versionOf('http://tables:8000/', { 'x-user': `user-${u}`, 'x-table': table });
        seen.add(v);
        expect(await versionOf('http://tables:8000/', { 'x-user': `user-${u}`, 'x-table': table })).toBe(v);
      }
      return seen.size;
    };
    expect(await endpointsFor('maglev')).toBe(3);
    expect(await endpointsFor('ring')).toBe(5);
  });

  it('failoverPriority: endpoints with the caller’s tier take everything, the others only once those fail', async () => {
    for (let i = 0; i < 10; i++) expect(await versionOf('http://by-tier:8000/')).toBe('gold');
    failing.set('by-tier-gold', 503);
    try {
      await eventually(
        'gold ejected, silver serving',
        async () => (await versionOf('http://by-tier:8000/')) === 'silver',
      );
      for (let i = 0; i < 10; i++) expect(await versionOf('http://by-tier:8000/')).toBe('silver');
    } finally {
      failing.delete('by-tier-gold');
    }
    await eventually(
      'gold back after its ejection',
      async () => (await versionOf('http://by-tier:8000/')) === 'gold',
      15_000,
    );
  });

  it('consecutiveGatewayErrors: 500s never eject an endpoint; 503s and refused connections do', async () => {
    failing.set('gateway-errors-a', 500);
    let refused = 0;
    const tally: Record<string, number> = {};
    for (let i = 0; i < 30; i++) {
      const r = await http1.request('http://gateway-errors:8000/');
      if (r.status === 200) tally[JSON.parse(r.body).version] = (tally[JSON.parse(r.body).version] ?? 0) + 1;
      else if (r.status === 500) tally.a500 = (tally.a500 ?? 0) + 1;
      else refused++;
    }
    // The endpoint that refuses connections was ejected after two; the one answering 500 never was.
    expect(refused).toBeLessThanOrEqual(2);
    expect(tally.a500 ?? 0).toBeGreaterThanOrEqual(12);
    failing.set('gateway-errors-a', 503);
    await eventually('a ejected on 503s', async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) statuses.push((await http1.request('http://gateway-errors:8000/')).status);
      return statuses.every((s) => s === 200) || statuses.join(',');
    });
    const hits = backends['gateway-errors-a']!.hits;
    for (let i = 0; i < 10; i++)
      expect((await http1.request('http://gateway-errors:8000/')).status).toBe(200);
    expect(backends['gateway-errors-a']!.hits).toBe(hits);
    failing.delete('gateway-errors-a');
  });

  it('minHealthPercent: ejection holds while enough endpoints are healthy, and stops mattering below it (panic)', async () => {
    failing.set('min-health-a', 503);
    await eventually('a ejected', async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) statuses.push((await http1.request('http://min-health:8000/')).status);
      return statuses.every((s) => s === 200) || statuses.join(',');
    });
    // Two of three healthy (67% ≥ 50%): the ejected endpoint gets nothing.
    const aHits = backends['min-health-a']!.hits;
    for (let i = 0; i < 12; i++) expect((await http1.request('http://min-health:8000/')).status).toBe(200);
    expect(backends['min-health-a']!.hits).toBe(aHits);
    // A second endpoint fails and is ejected: one of three healthy (33% < 50%), so all three take traffic again.
    failing.set('min-health-b', 503);
    await eventually('b ejected too', async () => {
      for (let i = 0; i < 3; i++) await http1.request('http://min-health:8000/');
      const clusters = await (await fetch(`http://127.0.0.1:${client.adminPort}/clusters`)).text();
      const ejected = clusters
        .split('\n')
        .filter((l) => l.startsWith('outbound|8000||min-health.') && l.includes('failed_outlier_check'));
      return ejected.length === 2 || `${ejected.length} ejected`;
    });
    const before = { a: backends['min-health-a']!.hits, b: backends['min-health-b']!.hits };
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++) statuses.push((await http1.request('http://min-health:8000/')).status);
    expect(backends['min-health-a']!.hits).toBeGreaterThan(before.a);
    expect(backends['min-health-b']!.hits).toBeGreaterThan(before.b);
    expect(statuses.filter((s) => s === 503).length).toBeGreaterThan(5);
    failing.delete('min-health-a');
    failing.delete('min-health-b');
  });

  it('tunnel: TCP to the service goes through its forward proxy as HTTP CONNECT to targetHost:targetPort', async () => {
    forwardProxyRequests = [];
    const s = await connectThroughSidecar(client.outboundPort, `tunnel:${ports.tunnel}`);
    expect(await roundTrip(s, 'hello through the tunnel')).toEqual({
      got: 'hello through the tunnel',
      closed: false,
    });
    s.destroy();
    expect(forwardProxyRequests).toEqual([`127.0.0.1:${ports.echo}`]);
  });

  it('proxyProtocol: the upstream connection starts with a PROXY v1 header naming the downstream ends', async () => {
    const s = await connectThroughSidecar(client.outboundPort, `haproxy:${ports.haproxy}`);
    expect((await roundTrip(s, 'after the header')).got).toBe('after the header');
    s.destroy();
    expect(proxyHeaders.at(-1)!.toString()).toMatch(/^PROXY TCP4 127\.0\.0\.1 \S+ \d+ \d+\r\n$/);
  });

  it('connectionPool.tcp.idleTimeout: an idle TCP connection is closed', async () => {
    const s = await connectThroughSidecar(client.outboundPort, `tcp-idle:${ports.tcpIdle}`);
    expect((await roundTrip(s, 'x')).got).toBe('x');
    const closed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 5000);
      s.once('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    expect(closed).toBe(true);
  });

  it('connectTimeout: a connection the endpoint never answers fails after the rule’s 300 ms (503 UF), not the mesh’s 10 s', async () => {
    const held = await unanswered.fill();
    try {
      // The client gives up after 10 s: only the rule's timeout can answer before that.
      const r = await http1.request('http://slow-connect:8000/');
      expect(r.status).toBe(503);
      expect(r.body).toContain('connection failure');
    } finally {
      for (const s of held) s.destroy();
    }
  });

  it('retryBudget: retries go on while within half of the requests in flight; one beyond it is not made (503 flagged UO)', async () => {
    const url = (p: string) => `http://budget-pct:8000${p}`;
    const uo = () =>
      metricSum(client.statsPort, 'istio_requests_total', {
        destination_service_name: 'budget-pct',
        response_flags: 'UO',
      });
    const uoBefore = await uo();
    // Six requests in flight: half of them is room for three retries at once, well above the minimum of one.
    const plain = Array.from({ length: 6 }, (_, i) => http1.request(url(`/hold/${i}`)));
    await eventually('six requests held', async () => budgetHeld.length === 6 || `${budgetHeld.length} held`);
    // Two failing requests, one after the other: each gets its 503 and its retry is made (and held).
    const retried = [];
    for (const i of [1, 2]) {
      retried.push(http1.request(url(`/fail/${i}`)));
      await eventually(`the retry of /fail/${i}`, async () =>
        budgetHeld.some((h) => h.path === `/fail/${i}`),
      );
    }
    // The six end: two retries in flight are now more than half of what is in flight (or one).
    answerHeld((p) => p.startsWith('/hold/'));
    expect((await Promise.all(plain)).map((r) => r.status)).toEqual([200, 200, 200, 200, 200, 200]);
    const third = await http1.request(url('/fail/3'));
    expect(third.status).toBe(503);
    expect(budgetAttempts.get('/fail/3')).toBe(1);
    await eventually(
      'the refused retry counted UO',
      async () => (await uo()) - uoBefore === 1 || `UO ${await uo()}`,
    );
    // The retried two answer with their retry's 200.
    answerHeld(() => true);
    expect((await Promise.all(retried)).map((r) => r.status)).toEqual([200, 200]);
    expect([budgetAttempts.get('/fail/1'), budgetAttempts.get('/fail/2')]).toEqual([2, 2]);
  });

  it('maxRetries: a retry beyond the budget is not made — that request gets the 503 flagged UO, the other its retries (URX)', async () => {
    const flags = async () => ({
      UO: await metricSum(client.statsPort, 'istio_requests_total', {
        destination_service_name: 'retry-budget',
        response_flags: 'UO',
      }),
      URX: await metricSum(client.statsPort, 'istio_requests_total', {
        destination_service_name: 'retry-budget',
        response_flags: 'URX',
      }),
    });
    const before = await flags();
    const hits = backends['retry-budget-v1']!.hits;
    const replies = await Promise.all([
      http1.request('http://retry-budget:8000/a'),
      http1.request('http://retry-budget:8000/b'),
    ]);
    expect(replies.map((r) => r.status)).toEqual([503, 503]);
    // One request made its three retries one at a time; the other's first retry found the budget taken.
    expect(backends['retry-budget-v1']!.hits - hits).toBe(5);
    await eventually('one UO and one URX counted', async () => {
      const now = await flags();
      return (now.UO - before.UO === 1 && now.URX - before.URX === 1) || JSON.stringify(now);
    });
  });
});
