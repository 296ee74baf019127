import { type ResourceSet, TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Backend,
  backend,
  outboundListeners,
  PASSTHROUGH,
  ProxyHarness,
  staticCluster,
  svcRoutes,
} from './harness.js';

type Json = Record<string, unknown>;

/**
 * The proxy honours every field it receives or refuses the resource: a real
 * ADS server pushes config with fields this proxy does not implement, and
 * the proxy NACKs it naming the field's path, while requests keep going
 * where the last good config sends them.
 */
describe('config the proxy cannot honour is NACKed by field, and the old config keeps serving', () => {
  const h = new ProxyHarness();
  let oldApp: Backend;
  let newApp: Backend;

  /** `app` sends to `port`; `cluster` and `route` add fields to the cluster and the route. */
  const set = (port: number, extra: { cluster?: Json; route?: Json } = {}): ResourceSet => ({
    [TypeUrl.Cluster]: [staticCluster('app', [port], extra.cluster), PASSTHROUGH],
    [TypeUrl.Listener]: outboundListeners(h.outbound),
    [TypeUrl.RouteConfiguration]: [
      svcRoutes([{ match: { prefix: '/' }, route: { cluster: 'app', timeout: '0s', ...extra.route } }]),
    ],
  });

  const servedBy = async () => JSON.parse((await h.request('http://svc:9080/who')).body).name as string;

  /** Pushes `bad` (which would also move `app` to the new backend) and returns the proxy's NACK reason. */
  async function nackOf(type: TypeUrl, bad: ResourceSet): Promise<string> {
    h.push(bad);
    await h.until(`${type} NACK`, () => h.state(type)?.state === 'NACKED');
    return h.state(type)?.error ?? '';
  }

  beforeAll(async () => {
    oldApp = await backend('old');
    newApp = await backend('new');
    await h.start(() => set(oldApp.port));
  });

  afterAll(async () => {
    await h.stop();
    await oldApp.close();
    await newApp.close();
  });

  it('a Cluster field the proxy does not implement (subset load balancing)', async () => {
    expect(await servedBy()).toBe('old');
    const reason = await nackOf(
      TypeUrl.Cluster,
      set(newApp.port, {
        cluster: {
          lb_subset_config: { fallback_policy: 'ANY_ENDPOINT', subset_selectors: [{ keys: ['v'] }] },
        },
      }),
    );
    expect(reason).toContain('cluster app: lb_subset_config is not supported');
    expect(await servedBy()).toBe('old');
  });

  it('an outlier detection field of a detector the proxy does not have (success rate)', async () => {
    const reason = await nackOf(
      TypeUrl.Cluster,
      set(newApp.port, {
        cluster: {
          outlier_detection: {
            consecutive_5xx: 3,
            enforcing_success_rate: 0,
            success_rate_minimum_hosts: 3,
          },
        },
      }),
    );
    expect(reason).toContain('cluster app: outlier_detection.success_rate_minimum_hosts is not supported');
    expect(await servedBy()).toBe('old');
  });

  it('outlier detection that leaves success-rate ejection on (Envoy enforces it unless told 0)', async () => {
    const reason = await nackOf(
      TypeUrl.Cluster,
      set(newApp.port, { cluster: { outlier_detection: { consecutive_5xx: 3 } } }),
    );
    expect(reason).toContain(
      'cluster app: outlier_detection.enforcing_success_rate is unset, which Envoy enforces at 100%',
    );
    expect(await servedBy()).toBe('old');
  });

  it('once the config says only what the proxy honours, it is applied', async () => {
    await h.apply(
      set(newApp.port, {
        cluster: { outlier_detection: { consecutive_5xx: 3, enforcing_success_rate: 0 } },
      }),
    );
    expect(await servedBy()).toBe('new');
    await h.apply(set(oldApp.port));
    expect(await servedBy()).toBe('old');
  });
});
