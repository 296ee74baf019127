import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppProber, AppProberError, rewriteProbes } from '../src/index.js';

describe('the agent side of probe rewriting (/app-health on 15020)', () => {
  let app: http.Server;
  let appPort = 0;
  let tcp: net.Server;
  let tcpPort = 0;
  let closedPort = 0;
  const seen: http.IncomingHttpHeaders[] = [];

  beforeAll(async () => {
    app = http.createServer((req, res) => {
      seen.push(req.headers);
      if (req.url === '/ready') res.end('ok');
      else if (req.url === '/slow') setTimeout(() => res.end('late'), 1500);
      else if (req.url === '/moved') res.writeHead(302, { location: '/ready' }).end();
      else res.writeHead(500).end('broken');
    });
    await new Promise<void>((r) => app.listen(0, '127.0.0.1', r));
    appPort = (app.address() as AddressInfo).port;
    tcp = net.createServer((s) => s.end());
    await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
    tcpPort = (tcp.address() as AddressInfo).port;
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    closedPort = (probe.address() as AddressInfo).port;
    await new Promise((r) => probe.close(r));
  });

  afterAll(async () => {
    app.closeAllConnections();
    await new Promise((r) => app.close(r));
    await new Promise((r) => tcp.close(r));
  });

  it('runs the probes the injector recorded, by the paths it rewrote them to', async () => {
    const containers = [
      {
        name: 'web',
        ports: [{ containerPort: appPort, name: 'http' }],
        readinessProbe: {
          httpGet: { path: '/ready', port: 'http', httpHeaders: [{ name: 'X-Probe', value: 'yes' }] },
        },
        livenessProbe: { tcpSocket: { port: tcpPort } },
        startupProbe: { httpGet: { path: '/broken', port: appPort } },
      },
    ];
    const prober = new AppProber(rewriteProbes(containers));
    expect(prober.paths().sort()).toEqual([
      '/app-health/web/livez',
      '/app-health/web/readyz',
      '/app-health/web/startupz',
    ]);
    expect(await prober.probe('/app-health/web/readyz')).toEqual({ status: 200, body: 'app answered 200' });
    expect(seen.at(-1)?.['x-probe']).toBe('yes');
    expect(await prober.probe('/app-health/web/livez')).toMatchObject({ status: 200 });
    expect(await prober.probe('/app-health/web/startupz')).toEqual({ status: 503, body: 'app answered 500' });
    expect((await prober.probe('/app-health/other/readyz')).status).toBe(404);
  });

  it('treats redirects as success, and refused connections and timeouts as failure', async () => {
    const prober = AppProber.fromEnv(
      JSON.stringify({
        '/app-health/a/readyz': { httpGet: { path: '/moved', port: appPort } },
        '/app-health/a/livez': { tcpSocket: { port: closedPort } },
        '/app-health/a/startupz': { httpGet: { path: '/slow', port: appPort }, timeoutSeconds: 1 },
      }),
    );
    expect((await prober.probe('/app-health/a/readyz')).status).toBe(200);
    expect((await prober.probe('/app-health/a/livez')).status).toBe(503);
    const slow = await prober.probe('/app-health/a/startupz');
    expect(slow).toEqual({ status: 503, body: 'app probe failed: no answer within 1000 ms' });
  });

  it('says what is wrong with a bad ISTIO_KUBE_APP_PROBERS', () => {
    expect(AppProber.fromEnv(undefined).paths()).toEqual([]);
    expect(() => AppProber.fromEnv('{')).toThrow(AppProberError);
    expect(() => AppProber.fromEnv('[]')).toThrow(
      'ISTIO_KUBE_APP_PROBERS must be a JSON object of probes by path',
    );
    expect(() => AppProber.fromEnv('{"/x": {"httpGet": {"port": 1}}}')).toThrow(
      '"/x" is not under /app-health/',
    );
    expect(() => AppProber.fromEnv('{"/app-health/a/readyz": {"exec": {}}}')).toThrow(
      'has neither an httpGet nor a tcpSocket probe',
    );
  });
});
