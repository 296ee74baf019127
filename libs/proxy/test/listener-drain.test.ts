import http from 'node:http';
import { TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backend, backend, HCM, ProxyHarness, ROUTER, staticCluster } from './harness.js';

/**
 * A bound HTTP listener replaced under a keep-alive client (an LDS change:
 * pilot's Telemetry, filter or chain edits): requests in flight finish on the
 * old listener, the next ones reach the new one, and none is lost to a
 * connection closed while the client was writing its next request.
 */
describe('bound HTTP listener replaced under keep-alive connections', () => {
  const h = new ProxyHarness();
  let app: Backend;
  let port = 0;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });

  const resources = (prefix: string) => ({
    [TypeUrl.Cluster]: [staticCluster('app', [app.port])],
    [TypeUrl.Listener]: [
      {
        name: 'inbound_app',
        address: { socket_address: { address: '127.0.0.1', port_value: port } },
        filter_chains: [
          {
            filters: [
              {
                name: 'envoy.filters.network.http_connection_manager',
                typed_config: {
                  '@type': HCM,
                  stat_prefix: prefix,
                  route_config: {
                    name: 'app',
                    virtual_hosts: [
                      {
                        name: 'app',
                        domains: ['*'],
                        routes: [{ match: { prefix: '/' }, route: { cluster: 'app' } }],
                      },
                    ],
                  },
                  http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } }],
                },
              },
            ],
          },
        ],
      },
    ],
    [TypeUrl.RouteConfiguration]: [],
  });

  const get = () =>
    new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, path: '/', agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end();
    });

  beforeAll(async () => {
    app = await backend('app');
    port = await h.ports.take();
    await h.start(() => resources('inbound-0'));
  });

  afterAll(async () => {
    agent.destroy();
    await h.stop();
    await app.close();
  });

  it('loses no request while the listener is replaced again and again', async () => {
    let stop = false;
    const statuses: (number | string)[] = [];
    // Two keep-alive clients, each sending its next request right after the last answer.
    const clients = [0, 1].map(async () => {
      for (let i = 0; i < 2000 && !stop; i++) statuses.push(await get().catch((e: Error) => e.message));
    });
    for (let i = 1; i <= 15; i++) {
      await h.apply(resources(`inbound-${i}`));
      await new Promise((r) => setTimeout(r, 30));
    }
    stop = true;
    await Promise.all(clients);
    expect(statuses.length).toBeGreaterThan(30);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
  });
});
