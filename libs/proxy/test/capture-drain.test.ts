import http from 'node:http';
import { TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backend, backend, outboundListeners, PASSTHROUGH, ProxyHarness, TCP } from './harness.js';

/**
 * The capture listener's own chain is where an app's traffic to unknown
 * destinations goes (PassthroughCluster, or BlackHoleCluster under
 * REGISTRY_ONLY). When pilot changes it, connections the app keeps alive
 * must not keep the old answer: they close after their current request.
 */
describe('capture listener replaced under keep-alive connections', () => {
  const h = new ProxyHarness();
  let unknown: Backend;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

  const resources = (catchAll: string) => {
    const [capture, port9080] = outboundListeners(h.outbound) as Record<string, unknown>[];
    return {
      [TypeUrl.Cluster]: [PASSTHROUGH, { name: 'BlackHoleCluster', type: 'STATIC', connect_timeout: '1s' }],
      [TypeUrl.Listener]: [
        {
          ...capture,
          filter_chains: [
            {
              filters: [
                { name: 'tcp', typed_config: { '@type': TCP, stat_prefix: catchAll, cluster: catchAll } },
              ],
            },
          ],
        },
        port9080!,
      ],
      [TypeUrl.RouteConfiguration]: [{ name: '9080', virtual_hosts: [] }],
    };
  };

  /** An app request on a kept-alive connection to a destination the mesh does not know. */
  const get = () =>
    new Promise<number>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: h.outbound,
          path: `http://127.0.0.1:${unknown.port}/`,
          headers: { host: `127.0.0.1:${unknown.port}` },
          agent,
        },
        (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode ?? 0));
        },
      );
      req.on('error', reject);
      req.end();
    });

  beforeAll(async () => {
    unknown = await backend('unknown');
    await h.start(() => resources('PassthroughCluster'));
  });

  afterAll(async () => {
    agent.destroy();
    await h.stop();
    await unknown.close();
  });

  it('answers from the new catch-all on the next request (REGISTRY_ONLY, then ALLOW_ANY again)', async () => {
    expect(await get()).toBe(200);
    expect(await get()).toBe(200);
    await h.apply(resources('BlackHoleCluster'));
    const hits = unknown.hits;
    expect(await get()).toBe(502);
    expect(unknown.hits).toBe(hits);
    await h.apply(resources('PassthroughCluster'));
    expect(await get()).toBe(200);
  });

  it('loses no request on kept-alive connections while the listener is replaced again and again', async () => {
    // A keep-alive client sending its next request right after each answer, as apps do.
    let stop = false;
    const statuses: (number | string)[] = [];
    const client = (async () => {
      for (let i = 0; i < 2000 && !stop; i++) statuses.push(await get().catch((e: Error) => e.message));
    })();
    for (let i = 0; i < 15; i++) {
      // A changed catch-all each time (its stat prefix), so the capture listener is replaced and drained.
      const next = resources('PassthroughCluster');
      const capture = (
        next[TypeUrl.Listener][0] as {
          filter_chains: { filters: { typed_config: Record<string, unknown> }[] }[];
        }
      ).filter_chains[0]!.filters[0]!.typed_config;
      capture.stat_prefix = `passthrough-${i}`;
      await h.apply(next);
      await new Promise((r) => setTimeout(r, 30));
    }
    stop = true;
    await client;
    expect(statuses.length).toBeGreaterThan(15);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
  });
});
