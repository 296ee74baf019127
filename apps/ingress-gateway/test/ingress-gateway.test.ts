import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger, freePort } from '@mizzen/runtime';
import { AdsServer, type XdsNode } from '@mizzen/xds';
import { describe, expect, it } from 'vitest';

/** The ingress-gateway process: a router node with Istio's gateway labels so `selector: {istio: ingressgateway}` picks it. */
const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'main.js');

describe('ingress-gateway process', () => {
  it('rejects an unknown flag with one clear line and the usage, exit code 2', () => {
    const r = spawnSync(process.execPath, [main, '--bogus'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.split('\n').slice(0, 2)).toEqual([
      "ingress-gateway: Unknown option '--bogus'",
      'usage: ingress-gateway --pilot HOST:PORT [--name istio-ingressgateway] [--namespace istio-system]',
    ]);
  });

  it('rejects a bad port map with one clear line, exit code 2', () => {
    const r = spawnSync(process.execPath, [main, '--pilot', '127.0.0.1:1', '--port-map', '80:8080'], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe(
      'ingress-gateway: --port-map: "80:8080" is not servicePort=listenPort',
    );
  });

  it('connects as a router node with the default gateway labels and its port map', async () => {
    const nodes: XdsNode[] = [];
    const ads = new AdsServer({
      logger: createLogger('test', { level: 'silent' }),
      onStreamOpen: (n) => nodes.push(n),
    });
    const xds = await ads.listen(0, '127.0.0.1');
    const [admin, health, http, stats] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const child = spawn(
      process.execPath,
      [
        main,
        '--pilot',
        `127.0.0.1:${xds}`,
        '--port-map',
        `80=${http}`,
        '--admin-port',
        String(admin),
        '--health-port',
        String(health),
        '--stats-port',
        String(stats),
      ],
      { stdio: 'ignore' },
    );
    try {
      const deadline = Date.now() + 15_000;
      while (nodes.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(nodes[0]?.id).toBe(
        'router~127.0.0.1~istio-ingressgateway.istio-system~istio-system.svc.cluster.local',
      );
      expect(nodes[0]?.metadata).toMatchObject({
        NAMESPACE: 'istio-system',
        LABELS: { istio: 'ingressgateway', app: 'istio-ingressgateway' },
        MIZZEN_GATEWAY_PORTS: { '80': http },
        MIZZEN_STATS_PORT: stats,
      });
      expect((await fetch(`http://127.0.0.1:${admin}/ready`)).status).toBe(503);
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGINT');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
      await ads.close();
    }
  });
});
