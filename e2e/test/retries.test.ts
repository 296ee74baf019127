import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backend, ProxyClient, type Reply, startBackend } from '../src/http.js';
import { eventually } from '../src/load.js';
import { type SidecarHandle, TestMesh } from '../src/mesh.js';

/**
 * Retries, timeouts and Envoy's response flags through pilot and real
 * sidecars, configured by Istio YAML: each retryOn condition retrying — or
 * not — as Envoy does, perTryTimeout, backoff, retryIgnorePreviousHosts, the
 * route timeout, and the flags (UF, UC, UR, URX, UT, UH, NR, DI, FI, UO) in
 * the caller's JSON access log. Most upstreams run without a sidecar so the
 * caller's sidecar meets their failures itself (a sidecar in front would
 * turn a reset into its own 503).
 */

/** A ServiceEntry whose endpoints are plain processes on these ports. */
function unmeshed(name: string, ports: number[], protocol = 'HTTP'): string {
  return `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${name}, namespace: default }
spec:
  hosts: [${name}.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 8000, name: http, protocol: ${protocol} }]
  endpoints: [${ports.map((p) => `{ address: 127.0.0.1, ports: { http: ${p} } }`).join(', ')}]
`;
}

const vs = (host: string, http: string) => `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${host}, namespace: default }
spec:
  hosts: [${host}]
  http:
${http}
`;

/**
 * A VirtualService with one route to `host` and `settings` (retries,
 * timeout…); its answers, the proxy's own included, carry `x-config: marker`
 * so a test knows when it is in force.
 */
const oneRoute = (host: string, settings: string, marker: string) =>
  vs(
    host,
    `    - route: [{ destination: { host: ${host} } }]
      headers: { response: { set: { x-config: "${marker}" } } }
${settings
  .split('\n')
  .map((l) => `      ${l}`)
  .join('\n')}`,
  );

/** Attempts per request id: the first attempt of each request fails the way its path says, later ones succeed. */
class FirstAttemptFails {
  readonly attempts = new Map<string, number>();
  count(rid: string): number {
    const n = (this.attempts.get(rid) ?? 0) + 1;
    this.attempts.set(rid, n);
    return n;
  }
}

interface AccessLine {
  request_id: string;
  path: string;
  response_code: number;
  response_flags: string;
  upstream_host?: string;
}

describe('retries, timeouts and response flags through pilot and real sidecars', () => {
  const mesh = new TestMesh();
  const backends: Record<string, Backend> = {};
  const flaky = new FirstAttemptFails();
  const sticky = new FirstAttemptFails();
  const refused = new FirstAttemptFails();
  let h2: http2.Http2Server;
  let client: SidecarHandle;
  let http: ProxyClient;

  /** A request with its own x-request-id, and what the client's sidecar logged for it. */
  const call = async (host: string, p: string, headers: Record<string, string> = {}) => {
    const rid = randomUUID();
    const reply = await http.request(`http://${host}:8000${p}`, { 'x-request-id': rid, ...headers });
    return { rid, reply };
  };
  const accessLine = async (rid: string): Promise<AccessLine> => {
    let found: AccessLine | undefined;
    await eventually(`the access-log line of ${rid}`, async () => {
      found = client.proc
        .output()
        .split('\n')
        .filter((l) => l.startsWith('{') && l.includes(rid))
        .map((l) => JSON.parse(l) as AccessLine)
        .find((l) => l.request_id === rid);
      return found !== undefined;
    });
    return found!;
  };
  /** Status, flags and how many attempts the upstream saw, for one request. */
  const outcome = async (host: string, p: string, seen: FirstAttemptFails = flaky) => {
    const { rid, reply } = await call(host, p);
    const line = await accessLine(rid);
    return `${reply.status} ${line.response_flags} ${seen.attempts.get(rid) ?? 0}`;
  };
  const applyAndWait = async (yaml: string, what: string, check: () => Promise<boolean | string>) => {
    const r = await mesh.apply(yaml);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    await eventually(what, check, 60_000);
  };
  /** Applies a oneRoute VirtualService and waits until the client's sidecar answers with its marker. */
  const configure = async (host: string, settings: string, marker: string, probe = '/') =>
    applyAndWait(oneRoute(host, settings, marker), `${host}: ${marker}`, async () => {
      const { reply } = await call(host, probe);
      return (
        reply.headers['x-config'] === marker ||
        `${reply.status} ${reply.headers['x-config']} ${reply.body.slice(0, 120)}`
      );
    });

  beforeAll(async () => {
    backends.flaky = await startBackend('flaky', 'v1', (req, res) => {
      const rid = String(req.headers['x-request-id']);
      const attempt = flaky.count(rid);
      const url = req.url ?? '/';
      const always = url.startsWith('/always/');
      if (attempt > 1 && !always && !url.startsWith('/hang')) return false;
      const status = /^\/(?:always|status)\/(\d{3})/.exec(url)?.[1];
      if (status) res.writeHead(Number(status)).end(`failing with ${status}`);
      else if (url === '/reset') req.socket.destroy();
      else if (url === '/slow' || url.startsWith('/hang')) setTimeout(() => res.end('{"slow":true}'), 1500);
      else return false;
      return true;
    });
    backends.live = await startBackend('pair', 'live');
    for (const name of ['s1', 's2']) {
      backends[name] = await startBackend('sticky', name, (req, res) => {
        if (sticky.count(String(req.headers['x-request-id'])) > 1) return false;
        res.writeHead(503).end('first attempt fails');
        return true;
      });
    }
    // An HTTP/2 upstream that refuses the first stream of each request (RST_STREAM REFUSED_STREAM).
    h2 = http2.createServer();
    h2.on('stream', (stream, headers) => {
      stream.on('error', () => {});
      if (refused.count(String(headers['x-request-id'])) === 1) {
        stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
        return;
      }
      stream.respond({ ':status': 200, 'content-type': 'application/json' });
      stream.end('{"name":"h2"}');
    });
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
    const deadPort = await mesh.ports.take();
    backends.slowpoke = await startBackend('slowpoke', 'v1', (req, res) => {
      if (req.url !== '/hang') return false;
      setTimeout(() => res.end('{}'), 3000);
      return true;
    });
    mesh.writeConfig(
      'services.yaml',
      [
        unmeshed('flaky', [backends.flaky.port]),
        unmeshed('narrow', [backends.flaky.port]),
        unmeshed('pair', [deadPort!, backends.live.port]),
        unmeshed('sticky', [backends.s1!.port, backends.s2!.port]),
        unmeshed('refusing', [(h2.address() as AddressInfo).port], 'HTTP2'),
        unmeshed('partial', [backends.live.port]),
        `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: nowhere, namespace: default }
spec:
  hosts: [nowhere.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 8000, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: nobody } }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: slowpoke, namespace: default }
spec:
  hosts: [slowpoke.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 8000, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: slowpoke } }
`,
      ].join('---\n'),
    );
    const meshConfig = path.join(mesh.dir, 'mesh-config.yaml');
    fs.writeFileSync(meshConfig, 'accessLogFile: /dev/stdout\naccessLogEncoding: JSON\n');
    await mesh.startPilot(['--mesh-config', meshConfig, '--registration-grace-ms', '30000']);
    const server = await mesh.startSidecar({
      workload: 'slowpoke-v1',
      service: 'slowpoke',
      labels: { app: 'slowpoke', version: 'v1' },
      appPort: backends.slowpoke.port,
      servicePort: 8000,
    });
    client = await mesh.startSidecar({
      workload: 'client',
      service: 'client',
      labels: { app: 'client' },
      appPort: await mesh.ports.take(),
    });
    await mesh.waitForSync([server.id, client.id], 120_000);
    http = new ProxyClient(client.outboundPort);
    await eventually(
      'slowpoke reachable through both sidecars',
      async () => (await http.request('http://slowpoke:8000/')).status === 200,
      60_000,
    );
  });

  afterAll(async () => {
    http?.close();
    await mesh.stop();
    await Promise.all(Object.values(backends).map((b) => b.close()));
    await new Promise((r) => h2?.close(r));
  });

  it('retries each retryOn condition as Envoy does, and nothing else', async () => {
    const table: Record<string, [string, string][]> = {
      '5xx': [
        ['/status/500', '200 - 2'],
        ['/reset', '200 - 2'],
        ['/status/409', '409 - 1'],
      ],
      'gateway-error': [
        ['/status/502', '200 - 2'],
        ['/status/504', '200 - 2'],
        ['/status/500', '500 - 1'],
        ['/reset', '200 - 2'],
      ],
      'connect-failure': [
        ['/reset', '503 UC 1'],
        ['/status/503', '503 - 1'],
      ],
      reset: [
        ['/reset', '200 - 2'],
        ['/status/503', '503 - 1'],
      ],
      'retriable-4xx': [
        ['/status/409', '200 - 2'],
        ['/status/404', '404 - 1'],
      ],
      // A status code in retryOn: retriable-status-codes with that code only.
      '418': [
        ['/status/418', '200 - 2'],
        ['/status/503', '503 - 1'],
      ],
    };
    for (const [condition, cases] of Object.entries(table)) {
      await configure('flaky', `retries: { attempts: 1, retryOn: "${condition}" }`, `retryOn ${condition}`);
      const got: [string, string][] = [];
      for (const [p] of cases) got.push([p, await outcome('flaky', p)]);
      expect(got, condition).toEqual(cases);
    }
    // Retries that run out: every attempt fails, the last answer comes back flagged URX.
    await configure('flaky', 'retries: { attempts: 1, retryOn: 5xx }', 'retryOn 5xx again');
    expect(await outcome('flaky', '/always/503')).toBe('503 URX 2');
  });

  it('retries a refused HTTP/2 stream only under refused-stream (UR otherwise)', async () => {
    for (const [condition, want] of [
      ['refused-stream', '200 - 2'],
      ['connect-failure', '503 UR 1'],
    ] as const) {
      await configure('refusing', `retries: { attempts: 1, retryOn: ${condition} }`, condition);
      for (let i = 0; i < 3; i++) expect(await outcome('refusing', '/', refused)).toBe(want);
    }
  });

  it('connect failures: UF without a retry policy, hidden by connect-failure retries, not by others', async () => {
    const failures = async () => {
      const flags: string[] = [];
      for (let i = 0; i < 10; i++) {
        const { rid, reply } = await call('pair', '/');
        flags.push(`${reply.status} ${(await accessLine(rid)).response_flags}`);
      }
      return flags;
    };
    // attempts: 0 is no retry at all: round robin sends every other request to the dead endpoint.
    await configure('pair', 'retries: { attempts: 0 }', 'no retries');
    const none = await failures();
    expect(none.filter((f) => f === '503 UF').length).toBe(5);
    expect(none.filter((f) => f === '200 -').length).toBe(5);
    await configure('pair', 'retries: { attempts: 2, retryOn: connect-failure }', 'connect-failure');
    expect(await failures()).toEqual(Array(10).fill('200 -'));
    await configure('pair', 'retries: { attempts: 2, retryOn: retriable-4xx }', 'retriable-4xx');
    expect((await failures()).filter((f) => f === '503 UF').length).toBe(5);
  });

  it('perTryTimeout retries a slow attempt under 5xx, and ends with 504 UT when the condition does not cover it', async () => {
    await configure('flaky', 'retries: { attempts: 2, perTryTimeout: 300ms, retryOn: 5xx }', 'per try, 5xx');
    expect(await outcome('flaky', '/slow')).toBe('200 - 2');
    await configure(
      'flaky',
      'retries: { attempts: 2, perTryTimeout: 300ms, retryOn: connect-failure }',
      'per try, connect-failure',
    );
    const { rid, reply } = await call('flaky', '/slow');
    expect([reply.status, reply.body]).toEqual([504, 'upstream request timeout']);
    expect((await accessLine(rid)).response_flags).toBe('UT');
    expect(flaky.attempts.get(rid)).toBe(1);
  });

  it('backoff: a long base interval keeps retries from landing within the route timeout', async () => {
    await configure(
      'flaky',
      'timeout: 500ms\nretries: { attempts: 1, retryOn: 5xx, backoff: 60s }',
      'slow back-off',
    );
    // Each retry waits a random time below 60s: within 500ms for about 1 request in 120.
    const slow = await Promise.all(Array.from({ length: 10 }, () => outcome('flaky', '/status/503')));
    expect(slow.filter((o) => o === '504 UT 1').length).toBeGreaterThanOrEqual(8);
    await configure('flaky', 'timeout: 500ms\nretries: { attempts: 1, retryOn: 5xx }', "Envoy's back-off");
    const fast = await Promise.all(Array.from({ length: 10 }, () => outcome('flaky', '/status/503')));
    expect(fast).toEqual(Array(10).fill('200 - 2'));
  });

  it('retryIgnorePreviousHosts: a consistent-hash route retries on its own host unless told to move on', async () => {
    const hits = () => ({ s1: backends.s1!.hits, s2: backends.s2!.hits });
    /** How many attempts each host took for one request of alice's. */
    const spread = async () => {
      const before = hits();
      const { reply } = await call('sticky', '/', { 'x-user': 'alice' });
      expect(reply.status).toBe(200);
      const after = hits();
      return [after.s1 - before.s1, after.s2 - before.s2].sort().join('+');
    };
    const hashed = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: sticky, namespace: default }
spec:
  host: sticky
  trafficPolicy: { loadBalancer: { consistentHash: { httpHeaderName: x-user } } }
`;
    expect((await mesh.apply(hashed)).status).toBe(200);
    // Without the predicate (Istio's default for hashed routes) both attempts go to alice's host.
    await configure('sticky', 'retries: { attempts: 1, retryOn: 5xx }', 'stay', '/');
    await eventually('both attempts on one host', async () => (await spread()) === '0+2');
    for (let i = 0; i < 5; i++) expect(await spread()).toBe('0+2');
    await configure(
      'sticky',
      'retries: { attempts: 1, retryOn: 5xx, retryIgnorePreviousHosts: true }',
      'move on',
      '/',
    );
    for (let i = 0; i < 5; i++) expect(await spread()).toBe('1+1');
  });

  it('a route timeout with a delayed upstream (through both sidecars) answers 504 UT', async () => {
    await configure('slowpoke', 'timeout: 400ms', 'a 400ms timeout');
    const { rid, reply } = await call('slowpoke', '/hang');
    expect([reply.status, reply.body]).toEqual([504, 'upstream request timeout']);
    expect(await accessLine(rid)).toMatchObject({ response_code: 504, response_flags: 'UT' });
    const fine = await call('slowpoke', '/');
    expect(fine.reply.status).toBe(200);
  });

  it('a host with no endpoints answers 503 UH at once, a path no route matches 404 NR, faults DI and FI, overflow UO', async () => {
    const nowhere = await call('nowhere', '/');
    expect([nowhere.reply.status, nowhere.reply.body]).toEqual([503, 'no healthy upstream']);
    expect(await accessLine(nowhere.rid)).toMatchObject({ response_code: 503, response_flags: 'UH' });

    await applyAndWait(
      vs(
        'partial',
        `    - match: [{ uri: { prefix: /delayed } }]
      fault: { delay: { fixedDelay: 200ms, percentage: { value: 100 } } }
      route: [{ destination: { host: partial } }]
    - match: [{ uri: { prefix: /aborted } }]
      fault: { abort: { httpStatus: 418, percentage: { value: 100 } } }
      route: [{ destination: { host: partial } }]
    - match: [{ uri: { prefix: /api } }]
      route: [{ destination: { host: partial } }]`,
      ),
      'only /api, /delayed and /aborted routed on partial',
      async () => (await call('partial', '/other')).reply.status === 404,
    );
    const flagOf = async (p: string) => {
      const { rid, reply } = await call('partial', p);
      return `${reply.status} ${(await accessLine(rid)).response_flags}`;
    };
    expect(await flagOf('/other')).toBe('404 NR');
    expect(await flagOf('/api/x')).toBe('200 -');
    expect(await flagOf('/delayed')).toBe('200 DI');
    expect(await flagOf('/aborted')).toBe('418 FI');

    // One connection and one pending request to narrow: a third at once overflows.
    await applyAndWait(
      `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: narrow, namespace: default }
spec:
  host: narrow
  trafficPolicy:
    connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1 } }
`,
      'the narrow limits in force',
      async () => {
        const burst = await Promise.all([1, 2, 3].map(() => call('narrow', '/hang')));
        return burst.some((b) => b.reply.status === 503);
      },
    );
    const burst = await Promise.all([1, 2, 3].map(() => call('narrow', '/hang')));
    const flags = await Promise.all(
      burst.map(async (b) => `${b.reply.status} ${(await accessLine(b.rid)).response_flags}`),
    );
    expect(flags.sort()).toEqual(['200 -', '200 -', '503 UO']);
  });

  it('adds x-envoy-upstream-service-time, generates x-request-id when absent, and sets x-forwarded-proto', async () => {
    const plain = await http.request('http://partial:8000/api/headers');
    expect(plain.status).toBe(200);
    expect(plain.headers['x-envoy-upstream-service-time']).toMatch(/^\d+$/);
    expect(backends.live!.lastHeaders?.['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(backends.live!.lastHeaders?.['x-forwarded-proto']).toBe('http');
    const own = await http.request('http://partial:8000/api/headers', { 'x-request-id': 'mine-1' });
    expect(own.status).toBe(200);
    expect(backends.live!.lastHeaders?.['x-request-id']).toBe('mine-1');
    const local: Reply = await http.request('http://nowhere:8000/');
    expect(local.headers['x-envoy-upstream-service-time']).toBeUndefined();
  });
});
