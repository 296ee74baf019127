import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger, freePort } from '@mizzen/runtime';
import { AdsServer, type XdsNode } from '@mizzen/xds';
import { describe, expect, it } from 'vitest';

/** The egress-gateway process: the gateway engine with Istio's egress defaults, so `selector: {istio: egressgateway}` picks it. */
const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'main.js');

describe('egress-gateway process', () => {
  it('rejects an unknown flag with one clear line and the usage, exit code 2', () => {
    const r = spawnSync(process.execPath, [main, '--bogus'], { encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(r.stderr.split('\n').slice(0, 2)).toEqual([
      "egress-gateway: Unknown option '--bogus'",
      'usage: egress-gateway --pilot HOST:PORT [--name istio-egressgateway] [--namespace istio-system]',
    ]);
  });

  it('rejects bad flags with one clear line, exit code 2', () => {
    const r = spawnSync(process.execPath, [main, '--pilot', '127.0.0.1:1', '--proxy-config', '{nope'], {
      encoding: 'utf8',
    });
    expect(r.status).toBe(2);
    expect(r.stderr.split('\n')[0]).toBe(
      'egress-gateway: --proxy-config must be JSON (Istio\'s ProxyConfig), got "{nope"',
    );
  });

  it('connects as a router node with the egress labels, registering as istio-egressgateway with named ports', async () => {
    const nodes: XdsNode[] = [];
    const ads = new AdsServer({
      logger: createLogger('test', { level: 'silent' }),
      onStreamOpen: (n) => nodes.push(n),
    });
    const xds = await ads.listen(0, '127.0.0.1');
    const [admin, health, http, https, stats] = await Promise.all([
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
        '--port-map',
        `80=${http},443=${https}`,
        '--admin-port',
        String(admin),
        '--health-port',
        String(health),
        '--stats-port',
        String(stats),
        '--proxy-config',
        '{"gatewayTopology":{"numTrustedProxies":1}}',
      ],
      { stdio: 'ignore' },
    );
    try {
      const deadline = Date.now() + 15_000;
      while (nodes.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(nodes[0]?.id).toBe(
        'router~127.0.0.1~istio-egressgateway.istio-system~istio-system.svc.cluster.local',
      );
      expect(nodes[0]?.metadata).toMatchObject({
        NAMESPACE: 'istio-system',
        LABELS: { istio: 'egressgateway', app: 'istio-egressgateway' },
        SERVICE_ACCOUNT: 'istio-egressgateway-service-account',
        MIZZEN_GATEWAY_PORTS: { '80': http, '443': https },
        MIZZEN_SERVICE: 'istio-egressgateway',
        MIZZEN_PORTS: [
          { name: 'http2', protocol: 'HTTP2', port: 80, targetPort: http, listenPort: http },
          { name: 'https', protocol: 'HTTPS', port: 443, targetPort: https, listenPort: https },
        ],
        PROXY_CONFIG: { gatewayTopology: { numTrustedProxies: 1 } },
      });
      const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
    } finally {
      child.kill('SIGKILL');
      await ads.close();
    }
  });
});
