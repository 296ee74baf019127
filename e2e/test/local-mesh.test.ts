import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type RedisServer, startRedisServer } from '@mizzen/ratelimit';
import { freePort, isAlive, isPortInUse } from '@mizzen/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProxyClient } from '../src/http.js';
import { eventually } from '../src/load.js';

/**
 * The README's first command, as a user runs it: `npx mizzen up` as a child
 * process, driven from outside with real HTTP and the real CLI — with
 * `--redis` pointing at a real redis-server, as the rate limiting section
 * tells users to start it.
 */
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-home-'));
const env = { ...process.env, MIZZEN_HOME: home, MIZZEN_PILOT: '' };
delete (env as Record<string, string | undefined>).MIZZEN_PILOT;

function mizzen(args: string[], input?: string) {
  const r = spawnSync('npx', ['mizzen', ...args], {
    cwd: root,
    env,
    input,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** What the CLI wrote to stderr, without the `npm warn` lines npx may print first; no stack traces. */
function errorLines(stderr: string): string[] {
  expect(stderr).not.toMatch(/\n\s+at /);
  return stderr
    .trim()
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('npm warn'));
}

interface ReviewsAnswer {
  version: string;
  reviews: { reviewer: string; rating?: { stars?: number; color?: string } }[];
}

describe('npx mizzen up: the local mesh with Bookinfo', () => {
  let up: ChildProcess;
  let output = '';
  let ingress = '';
  let exitCode: Promise<number | null>;
  let redis: RedisServer;

  beforeAll(async () => {
    redis = await startRedisServer();
    // The contract says 8080; if this machine already uses it, use another port rather than fail.
    const port = (await isPortInUse(8080)) ? await freePort() : 8080;
    ingress = `http://127.0.0.1:${port}`;
    const args = [
      'mizzen',
      'up',
      '--redis',
      redis.url,
      ...(port === 8080 ? [] : ['--ingress-port', String(port)]),
    ];
    up = spawn('npx', args, {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group, so the test can signal it the way a terminal's Ctrl-C does.
      detached: true,
    });
    exitCode = new Promise((resolve) => up.once('exit', (code) => resolve(code)));
    up.stdout?.on('data', (c: Buffer) => {
      output += c.toString();
    });
    up.stderr?.on('data', (c: Buffer) => {
      output += c.toString();
    });
    await eventually(
      '`mesh ready` from mizzen up',
      async () => output.includes('mesh ready') || (up.exitCode !== null ? `exited: ${output}` : false),
      180_000,
    );
  });

  afterAll(async () => {
    if (up?.pid && up.exitCode === null) {
      try {
        process.kill(-up.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    fs.rmSync(home, { recursive: true, force: true });
    await redis?.stop();
  });

  it('prints progress, a table of what runs where, and then `mesh ready`', () => {
    expect(output).toContain('starting pilot');
    expect(output).toMatch(/COMPONENT\s+KIND\s+PID\s+PORTS/);
    for (const name of [
      'pilot',
      'productpage-v1',
      'reviews-v3-sidecar',
      'istio-ingressgateway',
      'istio-egressgateway',
    ])
      expect(output).toContain(name);
    expect(output.indexOf('mesh ready')).toBeGreaterThan(output.indexOf('COMPONENT'));
  });

  it('serves /productpage through the ingress gateway', async () => {
    const res = await fetch(`${ingress}/productpage`);
    expect(res.status).toBe(200);
    const html = await res.text();
    expect(html).toContain('The Comedy of Errors');
    const unknown = await fetch(`${ingress}/not-routed`);
    expect(unknown.status).toBe(404);
  });

  it('serves Bookinfo over HTTPS for bookinfo.local with the certificate mizzen up made', () => {
    const state = JSON.parse(fs.readFileSync(path.join(home, 'run', 'state.json'), 'utf8')) as {
      ingressHttps: string;
    };
    const { hostname, port } = new URL(state.ingressHttps);
    expect(hostname).toBe('bookinfo.local');
    const ca = path.join(home, 'certs', 'bookinfo-ca.crt');
    // curl checks the certificate against the local ingress CA and the name bookinfo.local.
    const r = spawnSync(
      'curl',
      [
        '-sS',
        '--max-time',
        '10',
        '--cacert',
        ca,
        '--resolve',
        `bookinfo.local:${port}:127.0.0.1`,
        `${state.ingressHttps}/productpage`,
      ],
      { encoding: 'utf8' },
    );
    expect(r.stderr).toBe('');
    expect(r.stdout).toContain('The Comedy of Errors');
    const hello = spawnSync(
      'openssl',
      ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'bookinfo.local'],
      {
        input: '',
        encoding: 'utf8',
        timeout: 10_000,
      },
    );
    expect(hello.stdout).toMatch(/^subject=CN = bookinfo\.local$/m);
  });

  it('reports every component and proxy with real ports and ACKed xDS in `mizzen status --output json`', () => {
    const r = mizzen(['status', '--output', 'json']);
    expect(r.code, r.stderr).toBe(0);
    const status = JSON.parse(r.stdout) as {
      components: { name: string; pid: number; ports: Record<string, number> }[];
      proxies: {
        id: string;
        kind: string;
        workload: string;
        namespace: string;
        serviceAccount: string;
        ports: Record<string, number>;
        sync: Record<string, string>;
      }[];
    };
    expect(status.components.find((c) => c.name === 'pilot')?.ports.xds).toBeGreaterThan(0);
    expect(status.proxies).toHaveLength(8);
    const reviews = status.proxies.find((p) => p.workload === 'reviews-v1');
    expect(reviews).toMatchObject({
      id: 'sidecar~127.0.0.1~reviews-v1.default~default.svc.cluster.local',
      kind: 'sidecar',
      namespace: 'default',
      serviceAccount: 'bookinfo-reviews',
      sync: { CDS: 'ACKED', LDS: 'ACKED', EDS: 'ACKED', RDS: 'ACKED' },
    });
    expect(reviews?.ports.admin).toBeGreaterThan(0);
    expect(reviews?.ports.inbound).toBeGreaterThan(0);
    expect(reviews?.ports.outbound).toBeGreaterThan(0);
    expect(status.proxies.filter((p) => p.kind === 'ingress')).toHaveLength(1);
    expect(status.proxies.filter((p) => p.kind === 'egress')).toHaveLength(1);
  });

  it('sends every reviews request to v3 (red stars) after `mizzen apply` of a VirtualService', async () => {
    const r = mizzen([
      'apply',
      '-f',
      path.join(root, 'deploy/samples/bookinfo/networking/virtual-service-reviews-v3.yaml'),
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('virtualservice.networking.istio.io/reviews created');
    await eventually(
      'ten answers in a row from reviews v3',
      async () => {
        for (let i = 0; i < 10; i++) {
          const answer = (await (
            await fetch(`${ingress}/api/v1/products/0/reviews`)
          ).json()) as ReviewsAnswer;
          if (answer.version !== 'v3') return `got ${answer.version}`;
        }
        return true;
      },
      30_000,
    );
    const answer = (await (await fetch(`${ingress}/api/v1/products/0/reviews`)).json()) as ReviewsAnswer;
    expect(answer.reviews.every((rv) => rv.rating?.color === 'red')).toBe(true);
    const html = await (await fetch(`${ingress}/productpage`)).text();
    expect(html).toContain('stars-red');
    expect(html).not.toContain('stars-black');
  });

  it('rejects invalid YAML with one clear error naming file, field and reason, and changes nothing', async () => {
    const bad = path.join(home, 'bad-reviews.yaml');
    fs.writeFileSync(
      bad,
      `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
    - route:
        - destination: { host: reviews, subset: v1 }
          weight: 120
`,
    );
    const r = mizzen(['apply', '-f', bad]);
    expect(r.code).not.toBe(0);
    expect(errorLines(r.stderr)).toEqual([
      `error: ${bad}: document 1 (VirtualService default/reviews): spec.http[0].route[0].weight: must be between 0 and 100, got 120 (line 10)`,
    ]);
    // Broken YAML: the file, the document and the line, nothing applied.
    const broken = path.join(home, 'broken.yaml');
    fs.writeFileSync(
      broken,
      'apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews\nspec:\n  hosts: [reviews]\n',
    );
    const syntax = mizzen(['apply', '-f', broken]);
    expect(syntax.code).not.toBe(0);
    const syntaxLines = errorLines(syntax.stderr);
    expect(syntaxLines).toHaveLength(1);
    expect(syntaxLines[0]).toMatch(new RegExp(`^error: ${broken}: document 1: YAML syntax error at line 4`));
    // One good document and one bad: neither is applied.
    const mixed = path.join(home, 'mixed.yaml');
    fs.writeFileSync(
      mixed,
      `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: ratings-extra }
spec: { host: ratings }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ratings-slow }
spec:
  hosts: [ratings]
  http:
    - timeout: 1.5 s
      route: [{ destination: { host: ratings } }]
`,
    );
    const half = mizzen(['apply', '-f', mixed]);
    expect(half.code).not.toBe(0);
    expect(errorLines(half.stderr)).toEqual([
      expect.stringMatching(
        /^error: .*mixed\.yaml: document 2 \(VirtualService default\/ratings-slow\): spec\.http\[0\]\.timeout: invalid duration "1\.5 s"/,
      ),
    ]);
    const extra = mizzen(['get', 'destinationrule', 'ratings-extra']);
    expect(extra.code).not.toBe(0);
    expect(errorLines(extra.stderr).join('\n')).toContain('not found');
    const current = mizzen(['get', 'virtualservice', 'reviews', '-o', 'json']);
    expect(current.code, current.stderr).toBe(0);
    expect(JSON.parse(current.stdout).spec.http[0].route[0].destination.subset).toBe('v3');
    for (let i = 0; i < 5; i++) {
      const answer = (await (await fetch(`${ingress}/api/v1/products/0/reviews`)).json()) as ReviewsAnswer;
      expect(answer.version).toBe('v3');
    }
  });

  it("sends every proxy's telemetry to the collector: one Bookinfo trace across five services, every proxy scraped", async () => {
    const d = mizzen(['dashboard', '--no-open']);
    expect(d.code, d.stderr).toBe(0);
    const dashboard = d.stdout.trim();
    expect(dashboard).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(output).toContain(`dashboard: ${dashboard}`);
    const trace = 'c0ffee0000000000c0ffee0000000001';
    const res = await fetch(`${ingress}/productpage`, {
      headers: { traceparent: `00-${trace}-00000000000000aa-01` },
    });
    expect(res.status).toBe(200);
    type Span = { spanId: string; parentSpanId?: string; service: string; kind: string };
    let spans: Span[] = [];
    await eventually(
      'the trace through ingress, productpage, details, reviews and ratings',
      async () => {
        const r = await fetch(`${dashboard}/api/traces/${trace}`);
        if (!r.ok) return `collector answered ${r.status}`;
        spans = ((await r.json()) as { spans: Span[] }).spans;
        const services = new Set(spans.map((s) => s.service));
        const want = [
          'istio-ingressgateway.istio-system',
          'productpage.default',
          'details.default',
          'reviews.default',
          'ratings.default',
        ];
        return want.every((w) => services.has(w)) || `services so far: ${[...services].join(', ')}`;
      },
      30_000,
    );
    // One tree: every span but the gateway's hangs under another span of the trace.
    const ids = new Set(spans.map((s) => s.spanId));
    for (const s of spans)
      if (s.service !== 'istio-ingressgateway.istio-system') expect(ids.has(s.parentSpanId ?? '')).toBe(true);
    const status = JSON.parse(mizzen(['status', '--output', 'json']).stdout) as {
      proxies: { workload: string; ports: Record<string, number> }[];
    };
    for (const p of status.proxies) expect(p.ports.stats, p.workload).toBeGreaterThan(0);
    await eventually(
      'every proxy scraped by the collector',
      async () => {
        const { targets } = (await (await fetch(`${dashboard}/api/targets`)).json()) as {
          targets: { state: string }[];
        };
        return (
          (targets.length === 8 && targets.every((t) => t.state === 'up')) ||
          JSON.stringify(targets.map((t) => t.state))
        );
      },
      30_000,
    );
  });

  it('speaks mTLS on every hop, and the README lock-down keeps Bookinfo working while refusing everyone else', async () => {
    const status = JSON.parse(mizzen(['status', '--output', 'json']).stdout) as {
      proxies: { workload: string; ports: Record<string, number> }[];
    };
    const proxy = (workload: string) => status.proxies.find((p) => p.workload === workload)!;
    const reviews = proxy('reviews-v3');
    const stats = async (workload: string) =>
      (await fetch(`http://127.0.0.1:${proxy(workload).ports.stats}/stats/prometheus`)).text();
    /** An istio_requests_total line of `workload`'s proxy with every one of `labels`. */
    const reported = async (workload: string, labels: string[]) =>
      (await stats(workload))
        .split('\n')
        .some((l) => l.startsWith('istio_requests_total{') && labels.every((x) => l.includes(x)));
    const PRODUCTPAGE = 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage';
    const DETAILS = 'spiffe://cluster.local/ns/default/sa/bookinfo-details';
    await fetch(`${ingress}/productpage`);
    await eventually(
      'reviews reporting an mTLS request from productpage',
      async () =>
        reported('reviews-v3', [
          'reporter="destination"',
          `source_principal="${PRODUCTPAGE}"`,
          'connection_security_policy="mutual_tls"',
        ]),
      15_000,
    );
    // productpage → details is mutual TLS too: details saw productpage's certificate, productpage saw details'.
    await eventually(
      'both reporters of productpage → details naming the peer they verified',
      async () =>
        (await reported('details-v1', [
          'reporter="destination"',
          `source_principal="${PRODUCTPAGE}"`,
          `destination_principal="${DETAILS}"`,
          'connection_security_policy="mutual_tls"',
        ])) &&
        (await reported('productpage-v1', [
          'reporter="source"',
          `source_principal="${PRODUCTPAGE}"`,
          `destination_principal="${DETAILS}"`,
          'destination_workload="details-v1"',
        ])),
      15_000,
    );
    const lockdown = path.join(root, 'deploy/samples/security/bookinfo-lockdown.yaml');
    const applied = mizzen(['apply', '-f', lockdown]);
    expect(applied.code, applied.stderr).toBe(0);
    const direct = `http://127.0.0.1:${reviews.ports.inbound}/reviews/0`;
    await eventually(
      'plaintext to a sidecar refused (STRICT)',
      async () =>
        fetch(direct).then(
          () => false,
          () => true,
        ),
      15_000,
    );
    // The page still renders with reviews and their ratings (every hop allowed by service account).
    await eventually(
      'reviews with their ratings through the locked-down mesh',
      async () => {
        const answer = (await (await fetch(`${ingress}/api/v1/products/0/reviews`)).json()) as ReviewsAnswer;
        return (
          (answer.reviews.length > 0 && answer.reviews.every((rv) => rv.rating?.stars !== undefined)) ||
          JSON.stringify(answer)
        );
      },
      15_000,
    );
    expect((await fetch(`${ingress}/productpage`)).status).toBe(200);
    // Mesh identities bookinfo-hops does not name are refused, though their mTLS is perfectly valid:
    // details → reviews and reviews → details, sent through those workloads' own sidecars.
    for (const [from, url] of [
      ['details-v1', 'http://reviews:9080/reviews/0'],
      ['reviews-v1', 'http://details:9080/details/0'],
    ] as const) {
      const client = new ProxyClient(proxy(from).ports.outbound!);
      try {
        const r = await client.request(url);
        expect([from, r.status, r.body]).toEqual([from, 403, 'RBAC: access denied']);
      } finally {
        client.close();
      }
    }
    // …while productpage, which may, still gets the same details.
    const asProductpage = new ProxyClient(proxy('productpage-v1').ports.outbound!);
    try {
      expect((await asProductpage.request('http://details:9080/details/0')).status).toBe(200);
    } finally {
      asProductpage.close();
    }
    const removed = mizzen(['delete', '-f', lockdown]);
    expect(removed.code, removed.stderr).toBe(0);
    await eventually('plaintext accepted again', async () => (await fetch(direct)).status === 200, 15_000);
  });

  it('passes --redis to every process it starts as REDIS_URL, and the ingress keeps RateLimitPolicy counters there', async () => {
    const state = JSON.parse(fs.readFileSync(path.join(home, 'run', 'state.json'), 'utf8')) as {
      components: { name: string; pid: number }[];
    };
    for (const c of state.components) {
      const environ = fs.readFileSync(`/proc/${c.pid}/environ`, 'utf8').split('\0');
      expect(environ, c.name).toContain(`REDIS_URL=${redis.url}`);
    }
    const policy = path.join(home, 'product-42-limit.yaml');
    fs.writeFileSync(
      policy,
      `apiVersion: policy.mizzen.io/v1alpha1
kind: RateLimitPolicy
metadata: { name: product-42, namespace: istio-system }
spec:
  selector: { matchLabels: { istio: ingressgateway } }
  rules:
  - name: product-42
    match: { uri: { prefix: /api/v1/products/42 } }
    limit: { requests: 2, unit: HOUR }
`,
    );
    expect(mizzen(['apply', '-f', policy]).code).toBe(0);
    try {
      await eventually('the limit at the ingress', async () => {
        const r = await fetch(`${ingress}/api/v1/products/42`);
        await r.arrayBuffer();
        return r.status === 429 || `${r.status}`;
      });
      // The counter is in the Redis mizzen up was given, not in the gateway's memory.
      const keys = spawnSync(
        'redis-cli',
        ['-p', String(redis.port), '--scan', '--pattern', 'mizzen:ratelimit:*'],
        {
          encoding: 'utf8',
        },
      );
      expect(keys.stdout).toContain('product-42');
    } finally {
      expect(mizzen(['delete', '-f', policy]).code).toBe(0);
    }
  });

  it('says in one sentence when pilot cannot be reached', () => {
    const r = spawnSync('npx', ['mizzen', 'get', 'vs', '--pilot', 'http://127.0.0.1:9'], {
      cwd: root,
      env,
      encoding: 'utf8',
    });
    expect(r.status).not.toBe(0);
    // npx may print its own `npm warn` lines first; the CLI's answer is the one line that follows.
    const lines = r.stderr
      .trim()
      .split('\n')
      .filter((l) => !l.startsWith('npm warn'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^error: cannot reach pilot at http:\/\/127\.0\.0\.1:9 \(connection refused\)/);
  });

  it('stops every process it started when it alone is signalled (SIGTERM, as a service manager stops it), within seconds', async () => {
    const state = JSON.parse(fs.readFileSync(path.join(home, 'run', 'state.json'), 'utf8')) as {
      pid: number;
      components: { pid: number }[];
    };
    const pids = state.components.map((c) => c.pid);
    expect(pids.length).toBeGreaterThanOrEqual(16);
    expect(pids).not.toContain(state.pid);
    const started = Date.now();
    // Only mizzen up itself is signalled, not its process group (a terminal's Ctrl-C would reach
    // every child directly): the children stop because mizzen up stops them.
    process.kill(state.pid, 'SIGTERM');
    await eventually(
      'every component to exit',
      async () => pids.every((pid) => !isAlive(pid)) || pids.filter(isAlive).join(','),
      15_000,
    );
    await eventually('mizzen up to exit', async () => !isAlive(state.pid), 15_000);
    await exitCode;
    expect(Date.now() - started).toBeLessThan(15_000);
    expect(output).toContain('stopped');
    expect(fs.existsSync(path.join(home, 'run', 'state.json'))).toBe(false);
  });
});
