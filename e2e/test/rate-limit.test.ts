import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { type RedisServer, startRedisServer } from '@mizzen/ratelimit';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backend, type Reply, requestWithHost, startBackend } from '../src/http.js';
import { eventually } from '../src/load.js';
import { type SidecarHandle, TestMesh } from '../src/mesh.js';
import { appEntry } from '../src/processes.js';

/**
 * RateLimitPolicy end to end: pilot, two real ingress gateway replicas
 * sharing one real redis-server, a real backend, plain HTTP clients. Every
 * loop is bounded in requests and time; counts, not timings, are asserted.
 */

const HOST = 'limits.example.com';

const ROUTING = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: echo, namespace: default }
spec:
  hosts: [echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 8000, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, ports: { http: BACKEND_PORT } }]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: limits-gateway, namespace: istio-system }
spec:
  selector: { istio: ingressgateway }
  servers: [{ port: { number: 80, name: http, protocol: HTTP }, hosts: ['${HOST}'] }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: echo, namespace: default }
spec:
  hosts: ['${HOST}']
  gateways: [istio-system/limits-gateway]
  http:
  - name: one
    match: [{ uri: { prefix: /r/one } }]
    route: [{ destination: { host: echo.default.svc.cluster.local, port: { number: 8000 } } }]
  - name: two
    match: [{ uri: { prefix: /r/two } }]
    route: [{ destination: { host: echo.default.svc.cluster.local, port: { number: 8000 } } }]
  - name: echo
    route: [{ destination: { host: echo.default.svc.cluster.local, port: { number: 8000 } } }]
`;

/** One rule per descriptor kind, two requests an hour each: every distinct value gets its own counter. */
const PER_VALUE = `
apiVersion: policy.mizzen.io/v1alpha1
kind: RateLimitPolicy
metadata: { name: per-value, namespace: istio-system }
spec:
  selector: { matchLabels: { istio: ingressgateway } }
  rules:
  - name: by-path
    match: { uri: { prefix: /d/path/ } }
    descriptors: [{ path: {} }]
    limit: { requests: 2, unit: HOUR }
  - name: by-method
    match: { uri: { prefix: /d/method } }
    descriptors: [{ method: {} }]
    limit: { requests: 2, unit: HOUR }
  - name: by-route
    match: { uri: { prefix: /r/ } }
    descriptors: [{ route: {} }]
    limit: { requests: 2, unit: HOUR }
  - name: by-client
    match: { uri: { prefix: /d/client } }
    descriptors: [{ remoteAddress: {} }]
    limit: { requests: 2, unit: HOUR }
`;

/** One GLOBAL rule on a path prefix, shared by every replica (selected by the gateways' labels). */
function globalPolicy(name: string, prefix: string, extra: string, requests: number, unit = 'HOUR'): string {
  return `
apiVersion: policy.mizzen.io/v1alpha1
kind: RateLimitPolicy
metadata: { name: ${name}, namespace: istio-system }
spec:
  selector: { matchLabels: { istio: ingressgateway } }
${extra}
  rules:
  - name: ${name}
    match: { uri: { prefix: ${prefix} } }
    descriptors: [{ remoteAddress: {} }]
    limit: { requests: ${requests}, unit: ${unit} }
`;
}

const LOCAL = `
apiVersion: policy.mizzen.io/v1alpha1
kind: RateLimitPolicy
metadata: { name: local, namespace: istio-system }
spec:
  targetRefs: [{ kind: Gateway, name: limits-gateway }]
  mode: LOCAL
  rules:
  - name: burst
    match: { uri: { prefix: /local } }
    limit: { requests: 3, unit: HOUR }
`;

interface Replica {
  handle: SidecarHandle;
  port: number;
}

describe('RateLimitPolicy through two ingress gateway replicas and one Redis', () => {
  const mesh = new TestMesh();
  let redis: RedisServer;
  let backend: Backend;
  const replicas: Replica[] = [];

  const send = (
    r: Replica,
    p: string,
    opts: { method?: string; localAddress?: string } = {},
  ): Promise<Reply> => requestWithHost(`http://127.0.0.1:${r.port}${p}`, HOST, {}, opts);

  /** The sum of one metric family's samples (with these label values) over both replicas. */
  const metric = async (family: string, labels: Record<string, string>): Promise<number> => {
    let sum = 0;
    for (const r of replicas) {
      const text = await (await fetch(`http://127.0.0.1:${r.handle.statsPort}/stats/prometheus`)).text();
      for (const line of text.split('\n')) {
        if (!line.startsWith(`${family}{`) && !line.startsWith(`${family} `)) continue;
        if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`)))
          sum += Number(line.slice(line.lastIndexOf(' ') + 1));
      }
    }
    return sum;
  };

  /** Waits until both replicas run a config whose dump contains `text` (the policy reached them). */
  const applied = async (yaml: string, text: string): Promise<void> => {
    const res = await mesh.apply(yaml);
    expect(res.status, JSON.stringify(res.body)).toBe(200);
    await eventually(`"${text}" in both gateways' config`, async () => {
      for (const r of replicas) {
        const dump = await (await fetch(`http://127.0.0.1:${r.handle.adminPort}/config_dump`)).text();
        if (!dump.includes(text)) return `${r.handle.workload} does not have it yet`;
      }
      return true;
    });
  };

  beforeAll(async () => {
    redis = await startRedisServer();
    backend = await startBackend('echo', 'v1');
    mesh.writeConfig('routing.yaml', ROUTING.replace('BACKEND_PORT', String(backend.port)));
    await mesh.startPilot();
    for (const name of ['istio-ingressgateway-a', 'istio-ingressgateway-b']) {
      const port = await mesh.ports.take();
      // A generous bound on each Redis call (1 s, not the 100 ms default): a loaded machine would otherwise
      // fail some calls open, answering without RateLimit headers; the stall test pauses Redis for longer.
      const handle = await mesh.startGateway({
        name,
        portMap: { 80: port },
        env: { REDIS_URL: redis.url, RATELIMIT_TIMEOUT_MS: '1000' },
      });
      replicas.push({ handle, port });
    }
    await mesh.waitForSync(replicas.map((r) => r.handle.id));
    for (const r of replicas)
      await eventually(`${r.handle.workload} routing`, async () => (await send(r, '/')).status === 200);
  });

  afterAll(async () => {
    await mesh.stop();
    await backend?.close();
    await redis?.stop();
  });

  it('shares one limit between the replicas: the sum allowed is the limit, 429s carry the RateLimit headers', async () => {
    await applied(globalPolicy('shared', '/shared', '', 20), 'istio-system/shared');
    const answers: Reply[] = [];
    // 60 requests, alternating replicas: twice over the limit, bounded in count.
    for (let i = 0; i < 60; i++) answers.push(await send(replicas[i % 2]!, '/shared/item'));
    const allowed = answers.filter((a) => a.status === 200);
    const rejected = answers.filter((a) => a.status === 429);
    expect(allowed.length + rejected.length).toBe(60);
    // 20 per hour refills one request every 3 minutes: within this test's window the sum is exactly 20 (one window's tolerance: 21).
    expect(allowed.length).toBeGreaterThanOrEqual(20);
    expect(allowed.length).toBeLessThanOrEqual(21);
    // Both replicas let requests through: the counter is shared, not one per replica.
    expect(answers.slice(0, 20).every((a) => a.status === 200)).toBe(true);
    expect(allowed.map((a) => Number(a.headers['ratelimit-remaining'])).slice(0, 20)).toEqual(
      Array.from({ length: 20 }, (_, i) => 19 - i),
    );
    for (const a of allowed) expect(a.headers['ratelimit-limit']).toBe('20');
    const last = rejected.at(-1)!;
    expect(last.headers['ratelimit-limit']).toBe('20');
    expect(last.headers['ratelimit-remaining']).toBe('0');
    expect(Number(last.headers['ratelimit-reset'])).toBeGreaterThan(0);
    expect(Number(last.headers['retry-after'])).toBeGreaterThan(0);
    expect(last.headers['x-envoy-ratelimited']).toBe('true');
    // Requests outside the rule's match are not limited.
    expect((await send(replicas[0]!, '/other')).status).toBe(200);
    expect(await metric('mizzen_ratelimit_decisions_total', { rule: 'shared', decision: 'over_limit' })).toBe(
      rejected.length,
    );
    expect(await metric('mizzen_ratelimit_decisions_total', { rule: 'shared', decision: 'allowed' })).toBe(
      allowed.length,
    );
  });

  it('shadow mode counts over the limit and says so in metrics, but lets every request through without headers', async () => {
    await applied(globalPolicy('watch', '/watch', '  shadow: true', 2), 'istio-system/watch');
    const answers: Reply[] = [];
    for (let i = 0; i < 6; i++) answers.push(await send(replicas[i % 2]!, '/watch/x'));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200, 200, 200]);
    expect(answers.every((a) => a.headers['ratelimit-limit'] === undefined)).toBe(true);
    expect(await metric('mizzen_ratelimit_decisions_total', { rule: 'watch', decision: 'allowed' })).toBe(2);
    expect(
      await metric('mizzen_ratelimit_decisions_total', { rule: 'watch', decision: 'shadow_over_limit' }),
    ).toBe(4);
  });

  it('Redis stopped mid-test: ALLOW lets requests through, DENY answers 429, both count it, and both recover when Redis returns', async () => {
    await applied(globalPolicy('open', '/open', '', 10_000), 'istio-system/open');
    await applied(globalPolicy('closed', '/closed', '  failureMode: DENY', 10_000), 'istio-system/closed');
    for (const r of replicas) {
      expect((await send(r, '/open')).headers['ratelimit-limit']).toBe('10000');
      expect((await send(r, '/closed')).status).toBe(200);
    }
    expect(await metric('mizzen_ratelimit_store_up', {})).toBe(2);
    await redis.kill();
    await eventually('both gateways to see Redis gone', async () => {
      for (const r of replicas) if ((await send(r, '/closed')).status !== 429) return false;
      return true;
    });
    for (const r of replicas) {
      for (let i = 0; i < 5; i++) {
        const open = await send(r, '/open');
        expect(open.status).toBe(200);
        expect(open.headers['ratelimit-limit']).toBeUndefined();
        const closed = await send(r, '/closed');
        expect(closed.status).toBe(429);
        expect(closed.body).toBe('rate limit counters unavailable');
        expect(closed.headers['retry-after']).toBe('1');
      }
    }
    expect(await metric('mizzen_ratelimit_store_up', {})).toBe(0);
    expect(
      await metric('mizzen_ratelimit_decisions_total', { rule: 'open', decision: 'failure_mode_allowed' }),
    ).toBeGreaterThanOrEqual(10);
    expect(
      await metric('mizzen_ratelimit_decisions_total', { rule: 'closed', decision: 'failure_mode_denied' }),
    ).toBeGreaterThanOrEqual(10);
    expect(await metric('mizzen_ratelimit_store_errors_total', { reason: 'unavailable' })).toBeGreaterThan(0);

    await redis.restart();
    await eventually('both gateways to reconnect', async () => {
      for (const r of replicas) if ((await send(r, '/closed')).status !== 200) return false;
      return true;
    });
    for (const r of replicas) {
      expect((await send(r, '/open')).headers['ratelimit-limit']).toBe('10000');
      expect((await send(r, '/closed')).headers['ratelimit-limit']).toBe('10000');
    }
    expect(await metric('mizzen_ratelimit_store_up', {})).toBe(2);
  });

  it('keeps one shared counter per descriptor value: path, method, route name and client address', async () => {
    await applied(PER_VALUE, 'istio-system/per-value');
    /** Three requests alternating replicas: the third of a value is over its limit of two. */
    const three = async (p: string, opts: { method?: string; localAddress?: string } = {}) => {
      const statuses: number[] = [];
      for (let i = 0; i < 3; i++) statuses.push((await send(replicas[i % 2]!, p, opts)).status);
      return statuses;
    };
    const fresh = async (p: string, opts: { method?: string; localAddress?: string } = {}) =>
      (await send(replicas[1]!, p, opts)).status;
    // path: /d/path/a is spent, /d/path/b has its own counter.
    expect(await three('/d/path/a')).toEqual([200, 200, 429]);
    expect(await fresh('/d/path/b')).toBe(200);
    expect(await fresh('/d/path/a')).toBe(429);
    // method: GETs are spent, a POST to the same path is not.
    expect(await three('/d/method')).toEqual([200, 200, 429]);
    expect(await fresh('/d/method', { method: 'POST' })).toBe(200);
    // route: the VirtualService's route `one` is spent, route `two` is not.
    expect(await three('/r/one/x')).toEqual([200, 200, 429]);
    expect(await fresh('/r/two/x')).toBe(200);
    expect(await fresh('/r/one/y')).toBe(429);
    // remote address: a client on 127.0.0.1 is spent, one on 127.0.0.2 is not.
    expect(await three('/d/client', { localAddress: '127.0.0.1' })).toEqual([200, 200, 429]);
    expect(await fresh('/d/client', { localAddress: '127.0.0.2' })).toBe(200);
    expect(await fresh('/d/client', { localAddress: '127.0.0.1' })).toBe(429);
    const overLimit = { 'by-path': 2, 'by-method': 1, 'by-route': 2, 'by-client': 2 };
    for (const [rule, count] of Object.entries(overLimit))
      expect(await metric('mizzen_ratelimit_decisions_total', { rule, decision: 'over_limit' }), rule).toBe(
        count,
      );
  });

  it('Redis that stops answering (CLIENT PAUSE): no request waits on it — ALLOW lets through, DENY answers 429 — and counting resumes after', async () => {
    await applied(globalPolicy('stall-open', '/stall-open', '', 10_000), 'istio-system/stall-open');
    await applied(
      globalPolicy('stall-closed', '/stall-closed', '  failureMode: DENY', 10_000),
      'istio-system/stall-closed',
    );
    for (const r of replicas)
      expect((await send(r, '/stall-closed')).headers['ratelimit-limit']).toBe('10000');
    const timeouts = await metric('mizzen_ratelimit_store_errors_total', { reason: 'timeout' });
    // Redis stays connected but answers nothing for 10 s.
    await redis.pause(10_000);
    const paused = Date.now();
    const answers: { path: string; status: number; ms: number; limit?: string }[] = [];
    for (const r of replicas)
      for (const p of ['/stall-open', '/stall-closed']) {
        const started = Date.now();
        const a = await send(r, p);
        answers.push({
          path: p,
          status: a.status,
          ms: Date.now() - started,
          limit: a.headers['ratelimit-limit'] as string | undefined,
        });
      }
    // All four answered while Redis was still paused: each waited for the bounded timeout (1 s here), not for Redis.
    expect(Date.now() - paused).toBeLessThan(10_000);
    expect(answers.map((a) => [a.path, a.status, a.limit])).toEqual([
      ['/stall-open', 200, undefined],
      ['/stall-closed', 429, undefined],
      ['/stall-open', 200, undefined],
      ['/stall-closed', 429, undefined],
    ]);
    expect(await metric('mizzen_ratelimit_store_errors_total', { reason: 'timeout' })).toBeGreaterThanOrEqual(
      timeouts + 4,
    );
    await eventually('counting to resume once Redis answers again', async () => {
      for (const r of replicas)
        if ((await send(r, '/stall-closed')).headers['ratelimit-limit'] !== '10000') return false;
      return true;
    });
  });

  it('LOCAL mode: a token bucket in each replica (Envoy local_ratelimit), x-ratelimit headers, local_rate_limited', async () => {
    await applied(LOCAL, 'RateLimitPolicy/istio-system/local');
    for (const r of replicas) {
      const answers: Reply[] = [];
      for (let i = 0; i < 5; i++) answers.push(await send(r, '/local/x'));
      // Each replica has its own bucket of 3: nothing is shared.
      expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 429, 429]);
      expect(answers.map((a) => a.headers['x-ratelimit-remaining'])).toEqual(['2', '1', '0', '0', '0']);
      expect(answers[0]!.headers['x-ratelimit-limit']).toBe('3');
      expect(answers[3]!.body).toBe('local_rate_limited');
    }
    expect(await metric('mizzen_ratelimit_decisions_total', { mode: 'local', decision: 'over_limit' })).toBe(
      4,
    );
    expect((await send(replicas[0]!, '/other')).status).toBe(200);
  });

  it('mizzen apply refuses an invalid RateLimitPolicy naming document, field and reason, and applies nothing', () => {
    const file = path.join(mesh.dir, 'bad-limits.yaml');
    fs.writeFileSync(
      file,
      `${globalPolicy('fine', '/fine', '', 5)}---
apiVersion: policy.mizzen.io/v1alpha1
kind: RateLimitPolicy
metadata: { name: broken, namespace: istio-system }
spec:
  selector: { matchLabels: { istio: ingressgateway } }
  rules:
  - limit: { requests: 10, unit: FORTNIGHT }
    descriptors: [{ path: {}, method: {} }]
`,
    );
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, [appEntry('@mizzen/cli'), ...args, '--pilot', mesh.pilot!.base], {
        encoding: 'utf8',
        timeout: 30_000,
      });
    const apply = cli('apply', '-f', file);
    expect(apply.status).not.toBe(0);
    expect(apply.stderr).toContain('document 2 (RateLimitPolicy istio-system/broken)');
    expect(apply.stderr).toContain(
      'spec.rules[0].limit.unit: must be one of SECOND, MINUTE, HOUR, DAY, got "FORTNIGHT"',
    );
    const listed = cli('get', 'rlp', '-n', 'istio-system');
    expect(listed.status).toBe(0);
    expect(listed.stdout).not.toContain('fine');
    expect(listed.stdout).not.toContain('broken');
    expect(listed.stdout).toMatch(/NAME\s+MODE\s+TARGET\s+LIMITS/);
    expect(listed.stdout).toMatch(/shared\s+GLOBAL\s+istio=ingressgateway\s+20\/hour/);
  });
});
