import http from 'node:http';
import http2 from 'node:http2';
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

  it('tells a busy HTTP/2 client to move at once (GOAWAY): its next requests reach the new listener, none lost', async () => {
    const answering = (body: string) => {
      const set = resources('h2');
      const chain = (
        set[TypeUrl.Listener][0] as {
          filter_chains: { filters: { typed_config: Record<string, unknown> }[] }[];
        }
      ).filter_chains[0]!.filters[0]!.typed_config;
      chain.route_config = {
        name: 'app',
        virtual_hosts: [
          {
            name: 'app',
            domains: ['*'],
            routes: [
              { match: { prefix: '/' }, direct_response: { status: 200, body: { inline_string: body } } },
            ],
          },
        ],
      };
      return set;
    };
    await h.apply(answering('before'));
    // A client like a sidecar's upstream pool: one session, a new one when the server says GOAWAY.
    let session: http2.ClientHttp2Session | undefined;
    let goaways = 0;
    let sessions = 0;
    const current = () => {
      if (!session || session.closed || session.destroyed) {
        session = http2.connect(`http://127.0.0.1:${port}`);
        sessions++;
        session.on('goaway', () => goaways++);
        session.on('error', () => {});
      }
      return session;
    };
    const get2 = () =>
      new Promise<string>((resolve, reject) => {
        const stream = current().request({ ':path': '/' });
        let body = '';
        stream.setEncoding('utf8');
        stream.on('data', (c: string) => {
          body += c;
        });
        stream.on('end', () => resolve(body));
        stream.on('error', reject);
        stream.end();
      });
    const answers: string[] = [];
    // Busy: a request every 50 ms, so the session is never idle long enough to be closed as idle.
    for (let i = 0; i < 10; i++) {
      answers.push(await get2().catch((e: Error) => e.message));
      await new Promise((r) => setTimeout(r, 50));
    }
    await h.apply(answering('after'));
    let moved = -1;
    for (let i = 0; i < 100 && moved < 0; i++) {
      const answer = await get2().catch((e: Error) => e.message);
      answers.push(answer);
      if (answer === 'after') moved = i;
      await new Promise((r) => setTimeout(r, 50));
    }
    session?.close();
    expect(answers.filter((a) => a !== 'before' && a !== 'after')).toEqual([]);
    // Told once (a graceful shutdown is a notice and then the final GOAWAY), then one new session.
    expect(goaways).toBeGreaterThan(0);
    expect(sessions).toBe(2);
    // Well before the drain period would have closed the old session: a few requests, not 10 s of them.
    expect(moved).toBeGreaterThanOrEqual(0);
    expect(moved).toBeLessThan(20);
  });
});
