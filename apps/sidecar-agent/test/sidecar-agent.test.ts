import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger, freePort } from '@mizzen/runtime';
import { AdsServer, type XdsNode } from '@mizzen/xds';
import { afterAll, describe, expect, it } from 'vitest';

/** The sidecar-agent process as `mizzen up` starts it: flags in, an Istio-shaped node at pilot, admin ports up. */
const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'main.js');

function run(args: string[]) {
  return spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout: 10_000 });
}

describe('sidecar-agent process', () => {
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const c of children) c.kill('SIGKILL');
  });

  it('rejects bad flags with one line naming the flag, exit code 2', () => {
    const cases: [string[], RegExp][] = [
      [['--workload', 'w'], /--pilot is required/],
      [['--pilot', '127.0.0.1:15010'], /--workload is required/],
      [['--pilot', 'nope', '--workload', 'w'], /--pilot must be host:port/],
      [
        ['--pilot', '127.0.0.1:1', '--workload', 'w', '--port', 'http:9080:x:1'],
        /app port.*must be a port number/,
      ],
      [['--pilot', '127.0.0.1:1', '--workload', 'w', '--labels', 'app'], /--labels: "app" is not key=value/],
      [['--pilot', '127.0.0.1:1', '--workload', 'W_1'], /--workload must be a DNS-1123 label/],
      [['--pilot', '127.0.0.1:1', '--workload', 'w', '--bogus'], /^sidecar-agent: Unknown option '--bogus'$/],
      [['--workload', 'w', '--pilot'], /^sidecar-agent: Option '--pilot <value>' argument missing$/],
      [['--pilot', '127.0.0.1:1', '--workload', 'w', '--ca-plaintext=yes'], /does not take an argument/],
      // A library's flag (@mizzen/telemetry's) passes the early check and is read by the library.
      [
        ['--pilot', '127.0.0.1:1', '--workload', 'w', '--stats-port', '0'],
        /--stats-port must be a port number/,
      ],
    ];
    for (const [args, message] of cases) {
      const r = run(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr.split('\n')[0]).toMatch(message);
      expect(r.stderr.split('\n')[1]).toMatch(/^usage: sidecar-agent --pilot HOST:PORT/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it('--help prints the usage on stdout, exit code 0', () => {
    const r = run(['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^usage: sidecar-agent --pilot HOST:PORT/);
    expect(r.stdout).toContain('sidecar-agent iptables [istio-iptables flags]');
    expect(r.stderr).toBe('');
  });

  it('connects to pilot as an Istio sidecar node with its workload, ports and labels, and serves admin and health', async () => {
    const nodes: XdsNode[] = [];
    const ads = new AdsServer({
      logger: createLogger('test', { level: 'silent' }),
      onStreamOpen: (n) => nodes.push(n),
    });
    const xds = await ads.listen(0, '127.0.0.1');
    const [admin, health, outbound, inbound, stats] = await Promise.all([
      freePort(),
      freePort(),
      freePort(),
      freePort(),
      freePort(),
    ]);
    const child = spawn(
      process.execPath,
      [
        main,
        '--pilot',
        `127.0.0.1:${xds}`,
        '--workload',
        'reviews-v2',
        '--namespace',
        'shop',
        '--service',
        'reviews',
        '--service-account',
        'bookinfo-reviews',
        '--labels',
        'app=reviews,version=v2',
        '--port',
        `http:9080:19080:${inbound}`,
        '--outbound-port',
        String(outbound),
        '--admin-port',
        String(admin),
        '--health-port',
        String(health),
        '--stats-port',
        String(stats),
        '--locality',
        'us-east/zone-a/rack1',
      ],
      { stdio: 'ignore' },
    );
    children.push(child);
    try {
      const deadline = Date.now() + 15_000;
      while (nodes.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(nodes[0]?.id).toBe('sidecar~127.0.0.1~reviews-v2.shop~shop.svc.cluster.local');
      expect(nodes[0]?.locality).toEqual({ region: 'us-east', zone: 'zone-a', sub_zone: 'rack1' });
      expect(nodes[0]?.metadata).toMatchObject({
        NAMESPACE: 'shop',
        SERVICE_ACCOUNT: 'bookinfo-reviews',
        LABELS: { app: 'reviews', version: 'v2' },
        MIZZEN_SERVICE: 'reviews',
        MIZZEN_OUTBOUND_PORT: outbound,
        MIZZEN_STATS_PORT: stats,
        MIZZEN_PORTS: [{ name: 'http', port: 9080, targetPort: 19080, listenPort: inbound }],
      });
      // No config yet: alive but not ready, as Envoy's PRE_INITIALIZING.
      const ready = await fetch(`http://127.0.0.1:${admin}/ready`);
      expect(ready.status).toBe(503);
      expect((await fetch(`http://127.0.0.1:${health}/healthz/ready`)).status).toBe(503);
      // Istio's metrics endpoint answers from the start (families declared, no traffic yet).
      const metrics = await fetch(`http://127.0.0.1:${stats}/stats/prometheus`);
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toContain('# TYPE istio_requests_total counter');
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      await ads.close();
    }
  });

  it("merges the app's own metrics that the injector hands over in ISTIO_PROMETHEUS_ANNOTATIONS (Istio's metrics merging on Kubernetes)", async () => {
    const app = createServer((req, res) => {
      if (req.url !== '/app-metrics') return void res.writeHead(404).end();
      res
        .writeHead(200, { 'content-type': 'text/plain; version=0.0.4' })
        .end('# HELP app_orders_total Orders.\n# TYPE app_orders_total counter\napp_orders_total 42\n');
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const appPort = (app.address() as AddressInfo).port;
    const ads = new AdsServer({ logger: createLogger('test', { level: 'silent' }) });
    const xds = await ads.listen(0, '127.0.0.1');
    const [admin, health, stats] = await Promise.all([freePort(), freePort(), freePort()]);
    const args = [
      main,
      '--pilot',
      `127.0.0.1:${xds}`,
      '--workload',
      'orders-v1',
      '--admin-port',
      String(admin),
      '--health-port',
      String(health),
      '--stats-port',
      String(stats),
    ];
    // What libs/inject puts on the istio-proxy container for a pod annotated prometheus.io/port and path.
    const env = {
      ...process.env,
      ISTIO_PROMETHEUS_ANNOTATIONS: JSON.stringify({
        scrape: 'true',
        path: '/app-metrics',
        port: String(appPort),
      }),
    };
    const child = spawn(process.execPath, args, { stdio: 'ignore', env });
    children.push(child);
    try {
      let text = '';
      const deadline = Date.now() + 15_000;
      while (!text.includes('app_orders_total') && Date.now() < deadline) {
        text = await fetch(`http://127.0.0.1:${stats}/stats/prometheus`).then(
          (r) => r.text(),
          () => '',
        );
        if (!text.includes('app_orders_total')) await new Promise((r) => setTimeout(r, 100));
      }
      expect(text).toContain('# TYPE istio_requests_total counter');
      expect(text).toMatch(/^app_orders_total 42$/m);
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      // A value the agent cannot read is named on the first line, exit 2, as a bad flag.
      const bad = spawnSync(process.execPath, args, {
        encoding: 'utf8',
        timeout: 10_000,
        env: { ...process.env, ISTIO_PROMETHEUS_ANNOTATIONS: '{"port":"http"}' },
      });
      expect(bad.status).toBe(2);
      expect(bad.stderr.split('\n')[0]).toMatch(
        /ISTIO_PROMETHEUS_ANNOTATIONS: prometheus.io\/port must be a port number, got "http"/,
      );
    } finally {
      await ads.close();
      app.close();
    }
  });

  it("answers kubelet's rewritten probes on the stats port by running the app's own (ISTIO_KUBE_APP_PROBERS), and reports the pod's workload by ISTIO_META_WORKLOAD_NAME", async () => {
    const app = createServer((req, res) => {
      if (req.url === '/ready') return void res.end('ok');
      res.writeHead(500).end('broken');
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    const appPort = (app.address() as AddressInfo).port;
    const nodes: XdsNode[] = [];
    const ads = new AdsServer({
      logger: createLogger('test', { level: 'silent' }),
      onStreamOpen: (n) => nodes.push(n),
    });
    const xds = await ads.listen(0, '127.0.0.1');
    const [admin, health, stats] = await Promise.all([freePort(), freePort(), freePort()]);
    const args = [
      main,
      '--pilot',
      `127.0.0.1:${xds}`,
      '--workload',
      'orders-v1-7d9c8f6b5-x2x9q',
      '--admin-port',
      String(admin),
      '--health-port',
      String(health),
      '--stats-port',
      String(stats),
    ];
    // What libs/inject puts on the istio-proxy container of a Deployment's pod with readiness and liveness probes.
    const env = {
      ...process.env,
      ISTIO_META_WORKLOAD_NAME: 'orders-v1',
      ISTIO_KUBE_APP_PROBERS: JSON.stringify({
        '/app-health/orders/readyz': { httpGet: { path: '/ready', port: appPort }, timeoutSeconds: 1 },
        '/app-health/orders/livez': { httpGet: { path: '/down', port: appPort }, timeoutSeconds: 1 },
      }),
    };
    const child = spawn(process.execPath, args, { stdio: 'ignore', env });
    children.push(child);
    try {
      const deadline = Date.now() + 15_000;
      let ready = 0;
      while (ready !== 200 && Date.now() < deadline) {
        ready = await fetch(`http://127.0.0.1:${stats}/app-health/orders/readyz`).then(
          (r) => r.status,
          () => 0,
        );
        if (ready !== 200) await new Promise((r) => setTimeout(r, 100));
      }
      expect(ready).toBe(200);
      const live = await fetch(`http://127.0.0.1:${stats}/app-health/orders/livez`);
      expect(live.status).toBe(503);
      expect(await live.text()).toContain('app answered 500');
      expect((await fetch(`http://127.0.0.1:${stats}/app-health/other/readyz`)).status).toBe(404);
      while (nodes.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      // The node id names the pod; metrics name its workload (the Deployment).
      expect(nodes[0]?.id).toBe(
        'sidecar~127.0.0.1~orders-v1-7d9c8f6b5-x2x9q.default~default.svc.cluster.local',
      );
      expect(nodes[0]?.metadata).toMatchObject({ WORKLOAD_NAME: 'orders-v1' });
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      // A value the agent cannot read is named on the first line, exit 2, as a bad flag.
      const bad = spawnSync(process.execPath, args, {
        encoding: 'utf8',
        timeout: 10_000,
        env: { ...process.env, ISTIO_KUBE_APP_PROBERS: '[1]' },
      });
      expect(bad.status).toBe(2);
      expect(bad.stderr.split('\n')[0]).toMatch(/ISTIO_KUBE_APP_PROBERS must be a JSON object/);
    } finally {
      await ads.close();
      app.close();
    }
  });
});
