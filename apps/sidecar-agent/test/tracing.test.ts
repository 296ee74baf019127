import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger, freePort } from '@mizzen/runtime';
import { AdsServer, Snapshot, startOtlpTraceReceiver, TypeUrl } from '@mizzen/xds';
import { describe, expect, it } from 'vitest';

/**
 * The proxy process's own traces with OpenTelemetry's Node SDK, from the
 * standard OTEL_* environment, as pilot's and citadel's: a span per xDS
 * response it applied or rejected, under its own resource, flushed when it
 * stops. (The requests' spans are Istio's and go where the mesh config says.)
 */
const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'main.js');
const NODE = 'sidecar~127.0.0.1~tracer-v1.shop~shop.svc.cluster.local';

const cluster = {
  name: 'outbound|9080||reviews.shop.svc.cluster.local',
  type: 'STATIC',
  connect_timeout: '1s',
  load_assignment: {
    cluster_name: 'outbound|9080||reviews.shop.svc.cluster.local',
    endpoints: [
      {
        lb_endpoints: [
          { endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: 9 } } } },
        ],
      },
    ],
  },
};

describe("the sidecar-agent's own traces", { timeout: 30_000 }, () => {
  it('exports a span per config update (a rejected one as an error) with its resource, and flushes on SIGTERM', async () => {
    const receiver = await startOtlpTraceReceiver();
    const ads = new AdsServer({ logger: createLogger('test', { level: 'silent' }) });
    const xds = await ads.listen(0, '127.0.0.1');
    ads.setSnapshot(NODE, Snapshot.build({ [TypeUrl.Cluster]: [cluster], [TypeUrl.Listener]: [] }));
    const [admin, health] = [await freePort(), await freePort()];
    const child = spawn(
      process.execPath,
      [
        main,
        '--pilot',
        `127.0.0.1:${xds}`,
        '--workload',
        'tracer-v1',
        '--namespace',
        'shop',
        '--admin-port',
        String(admin),
        '--health-port',
        String(health),
      ],
      {
        stdio: 'ignore',
        env: {
          ...process.env,
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
          OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=e2e',
          // A long batch delay: spans can only arrive through the flush at shutdown.
          OTEL_BSP_SCHEDULE_DELAY: '60000',
        },
      },
    );
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      const until = async (what: string, check: () => boolean) => {
        const deadline = Date.now() + 15_000;
        while (!check()) {
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
          await new Promise((r) => setTimeout(r, 50));
        }
      };
      const state = (type: string) =>
        ads
          .status()
          .find((s) => s.node.id === NODE)
          ?.types.find((t) => t.type === type)?.state;
      await until('the cluster ACKed', () => state('CDS') === 'ACKED');
      // A listener the proxy cannot apply: NACKed, and its span says why.
      ads.setSnapshot(
        NODE,
        Snapshot.build({
          [TypeUrl.Cluster]: [cluster],
          [TypeUrl.Listener]: [
            {
              name: 'broken',
              address: { socket_address: { address: '127.0.0.1', port_value: 0 } },
              // A tcp_proxy with nowhere to go.
              filter_chains: [
                {
                  filters: [
                    {
                      name: 'envoy.filters.network.tcp_proxy',
                      typed_config: {
                        '@type': 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
                        stat_prefix: 'broken',
                      },
                    },
                  ],
                },
              ],
            },
          ],
        }),
      );
      await until('the listener NACKed', () => state('LDS') === 'NACKED');
      expect(receiver.spans).toEqual([]);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      const cds = receiver.spans.find((s) => s.name === 'xds apply CDS');
      expect(cds).toMatchObject({
        service: 'sidecar-agent',
        statusCode: 0,
        attributes: { 'xds.type_url': TypeUrl.Cluster, 'xds.resources': '1', 'xds.node': NODE },
      });
      expect(cds!.resource).toMatchObject({
        'k8s.pod.name': 'tracer-v1',
        'k8s.namespace.name': 'shop',
        'deployment.environment.name': 'e2e',
      });
      const rejected = receiver.spans.find((s) => s.name === 'xds apply LDS' && s.statusCode === 2);
      expect(rejected?.statusMessage).toMatch(/listener broken.*tcp_proxy names no cluster/);
    } finally {
      child.kill('SIGKILL');
      await ads.close();
      await receiver.close();
    }
  });
});
