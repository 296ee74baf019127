import { TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backend, backend, outboundListeners, PASSTHROUGH, ProxyHarness, svcRoutes } from './harness.js';

type Json = Record<string, unknown>;

/**
 * Locality-aware balancing through a real proxy to real backends, with the
 * Envoy fields pilot emits for a DestinationRule's localityLbSetting, warmup
 * and outlierDetection and a VirtualService's retryRemoteLocalities:
 * priorities with failover, locality weights, slow start and retries to
 * other priorities.
 */
describe('locality load balancing, slow start and retries to other localities', () => {
  const h = new ProxyHarness();
  const b: Record<string, Backend> = {};
  /** Backends answering 503 to everything while listed here. */
  const down = new Set<string>();
  /** Whether `late` is in the warmup cluster's assignment yet, and the slow start window. */
  let lateJoined = false;
  let warmupWindow = '60s';

  const eds = (name: string, extra: Json = {}): Json => ({
    name,
    type: 'EDS',
    connect_timeout: '1s',
    eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 'V3' }, service_name: name },
    ...extra,
  });

  const group = (locality: string, ports: number[], priority: number, weight = ports.length): Json => {
    const [region, zone] = locality.split('/');
    return {
      locality: { region, zone },
      priority,
      load_balancing_weight: weight,
      lb_endpoints: ports.map((port) => ({
        endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } },
        health_status: 'HEALTHY',
      })),
    };
  };

  const clusters = () => [
    // failover: the local zone at priority 0, the other zone at 1 (Istio's failover with outlierDetection).
    eds('failover', {
      outlier_detection: {
        consecutive_5xx: 2,
        enforcing_consecutive_5xx: 100,
        enforcing_success_rate: 0,
        interval: '0.1s',
        base_ejection_time: '0.5s',
        max_ejection_percent: 100,
      },
      common_lb_config: { healthy_panic_threshold: { value: 0 } },
    }),
    // distribute: one priority, locality weights 80/20 (Istio's distribute), locality-weighted balancing on.
    eds('distribute', { common_lb_config: { locality_weighted_lb_config: {} } }),
    // retries: a failing local zone and a healthy remote one, no outlier detection to move traffic.
    eds('retries', { common_lb_config: { healthy_panic_threshold: { value: 0 } } }),
    eds('warmup', {
      lb_policy: 'ROUND_ROBIN',
      round_robin_lb_config: {
        slow_start_config: {
          slow_start_window: warmupWindow,
          aggression: { default_value: 1, runtime_key: '(' },
          min_weight_percent: { value: 10 },
        },
      },
    }),
    eds('no-warmup'),
    PASSTHROUGH,
  ];

  const assignments = () => [
    {
      cluster_name: 'failover',
      endpoints: [group('r1/z1', [b.local!.port], 0), group('r1/z2', [b.remote!.port], 1)],
    },
    {
      cluster_name: 'distribute',
      endpoints: [
        group('r1/z1', [b.local!.port], 0, 80),
        group('r1/z2', [b.remote!.port, b.remote2!.port], 0, 20),
      ],
    },
    {
      cluster_name: 'retries',
      endpoints: [group('r1/z1', [b.broken!.port], 0), group('r2/z1', [b.remote!.port], 1)],
    },
    ...['warmup', 'no-warmup'].map((name) => ({
      cluster_name: name,
      endpoints: [group('r1/z1', lateJoined ? [b.early!.port, b.late!.port] : [b.early!.port], 0)],
    })),
  ];

  const retry = (withPriority: boolean): Json => ({
    retry_on: '5xx',
    num_retries: 2,
    ...(withPriority
      ? {
          retry_priority: {
            name: 'envoy.retry_priorities.previous_priorities',
            typed_config: {
              '@type':
                'type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig',
              update_frequency: 2,
            },
          },
        }
      : {}),
  });

  const routes = () =>
    svcRoutes([
      { match: { prefix: '/failover' }, route: { cluster: 'failover', timeout: '0s' } },
      { match: { prefix: '/distribute' }, route: { cluster: 'distribute', timeout: '0s' } },
      {
        match: { prefix: '/remote-retries' },
        route: { cluster: 'retries', timeout: '0s', retry_policy: retry(true) },
      },
      {
        match: { prefix: '/local-retries' },
        route: { cluster: 'retries', timeout: '0s', retry_policy: retry(false) },
      },
      { match: { prefix: '/warmup' }, route: { cluster: 'warmup', timeout: '0s' } },
      { match: { prefix: '/no-warmup' }, route: { cluster: 'no-warmup', timeout: '0s' } },
    ]);

  const resources = () => ({
    [TypeUrl.Cluster]: clusters(),
    [TypeUrl.ClusterLoadAssignment]: assignments(),
    [TypeUrl.Listener]: outboundListeners(h.outbound),
    [TypeUrl.RouteConfiguration]: [routes()],
  });

  const nameOf = async (path: string) => {
    const r = await h.request(`http://svc:9080${path}`);
    return r.status === 200 ? (JSON.parse(r.body).name as string) : `status ${r.status}`;
  };

  const tally = async (path: string, n: number) => {
    const out: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const name = await nameOf(path);
      out[name] = (out[name] ?? 0) + 1;
    }
    return out;
  };

  beforeAll(async () => {
    for (const name of ['local', 'remote', 'remote2', 'broken', 'early', 'late']) {
      b[name] = await backend(name, (_req, res) => {
        if (name !== 'broken' && !down.has(name)) return false;
        res.writeHead(503).end('down');
        return true;
      });
    }
    await h.start(resources);
  });

  afterAll(async () => {
    await h.stop();
    await Promise.all(Object.values(b).map((x) => x.close()));
  });

  it('failover: traffic stays in the local locality, moves to the next when the local endpoint is ejected, and comes back', async () => {
    expect(await tally('/failover', 20)).toEqual({ local: 20 });
    down.add('local');
    const during = await tally('/failover', 20);
    // Two 503s eject the local endpoint (consecutive_5xx: 2); everything after goes to the other zone.
    expect(during['status 503'] ?? 0).toBeLessThanOrEqual(2);
    expect(during.remote).toBeGreaterThanOrEqual(18);
    const clusters = await (await fetch(`http://127.0.0.1:${h.admin}/clusters`)).text();
    expect(clusters).toContain(`failover::127.0.0.1:${b.local!.port}::health_flags::/failed_outlier_check`);
    expect(clusters).toContain(`failover::127.0.0.1:${b.remote!.port}::priority::1`);
    down.delete('local');
    await h.until(
      'the local endpoint back in rotation',
      async () => (await nameOf('/failover')) === 'local',
      5_000,
    );
    expect(await tally('/failover', 10)).toEqual({ local: 10 });
  });

  it('distribute: locality weights 80/20 split the requests 80/20 whatever the host counts', async () => {
    const t = await tally('/distribute', 500);
    expect(t['status 503']).toBeUndefined();
    const local = (t.local ?? 0) / 5;
    expect(local).toBeGreaterThanOrEqual(75);
    expect(local).toBeLessThanOrEqual(85);
    // Both hosts of the 20% locality share its part.
    expect(t.remote).toBeGreaterThan(20);
    expect(t.remote2).toBeGreaterThan(20);
  });

  it('retryRemoteLocalities: the third attempt leaves the failing local priority; without it every retry stays local', async () => {
    const before = b.broken!.hits;
    const r = await h.request('http://svc:9080/remote-retries');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body).name).toBe('remote');
    // update_frequency 2: the first two attempts use the unmodified priority load.
    expect(b.broken!.hits - before).toBe(2);
    const local = await h.request('http://svc:9080/local-retries');
    expect(local.status).toBe(503);
    expect(b.broken!.hits - before).toBe(5);
  });

  it('warmup: an endpoint that joins gets a small share at first, then its full share once its window is over', async () => {
    lateJoined = true;
    await h.apply(resources());
    await h.until(
      'the new endpoint in the warmup cluster',
      async () => (await tally('/no-warmup', 4)).late === 2,
    );
    const ramping = await tally('/warmup', 220);
    // 10% of the weight (min_weight_percent) for the first seconds of a 60s window: about 1 request in 11.
    expect(ramping.late).toBeGreaterThan(0);
    expect(ramping.late).toBeLessThan(220 * 0.25);
    // Without slow start the newcomer gets half at once.
    expect((await tally('/no-warmup', 200)).late).toBe(100);
    // A window that is already over: the host has its full weight.
    warmupWindow = '0.001s';
    await h.apply(resources());
    expect((await tally('/warmup', 200)).late).toBe(100);
  });
});
