import net from 'node:net';
import { Snapshot, TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PASSTHROUGH, ProxyHarness, staticCluster, TCP } from './harness.js';

/**
 * AuthorizationPolicy on a TCP port, as pilot translates it: network RBAC
 * before tcp_proxy. A denied connection is closed before anything reaches
 * the workload; an allowed one is proxied byte for byte.
 */
const NETWORK_RBAC = 'type.googleapis.com/envoy.extensions.filters.network.rbac.v3.RBAC';

/** A TCP echo server that counts the connections it got. */
async function echoServer() {
  const state = { connections: 0 };
  const server = net.createServer((s) => {
    state.connections++;
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    state,
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Sends `text` and collects what comes back until the peer closes or 1 s passes. */
function exchange(port: number, text: string): Promise<{ echoed: string; closedByPeer: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let echoed = '';
    const timer = setTimeout(() => {
      s.destroy();
      resolve({ echoed, closedByPeer: false });
    }, 1000);
    s.on('data', (d) => {
      echoed += d.toString();
      if (echoed.length >= text.length) {
        clearTimeout(timer);
        s.end();
        resolve({ echoed, closedByPeer: false });
      }
    });
    s.once('close', () => {
      clearTimeout(timer);
      resolve({ echoed, closedByPeer: true });
    });
    s.once('error', () => {});
    s.write(text);
  });
}

describe('AuthorizationPolicy for TCP (network RBAC)', () => {
  const h = new ProxyHarness();
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let port = 0;

  const resources = (allowed: string) => ({
    [TypeUrl.Cluster]: [staticCluster('inbound|5432||', [echo.port]), PASSTHROUGH],
    [TypeUrl.Listener]: [
      {
        name: 'db',
        traffic_direction: 'INBOUND',
        address: { socket_address: { address: '127.0.0.1', port_value: port } },
        filter_chains: [
          {
            filters: [
              {
                name: 'envoy.filters.network.rbac',
                typed_config: {
                  '@type': NETWORK_RBAC,
                  stat_prefix: 'tcp.',
                  rules: {
                    action: 'ALLOW',
                    policies: {
                      'ns[default]-policy[db]-rule[0]': {
                        permissions: [{ and_rules: { rules: [{ any: true }] } }],
                        principals: [
                          {
                            and_ids: {
                              ids: [
                                {
                                  or_ids: {
                                    ids: [{ direct_remote_ip: { address_prefix: allowed, prefix_len: 32 } }],
                                  },
                                },
                              ],
                            },
                          },
                        ],
                      },
                    },
                  },
                },
              },
              { name: 'tcp', typed_config: { '@type': TCP, stat_prefix: 'db', cluster: 'inbound|5432||' } },
            ],
          },
        ],
      },
    ],
  });

  beforeAll(async () => {
    echo = await echoServer();
    [port] = await h.ports.takeMany(1);
    await h.start(() => resources('10.1.2.3'));
  });

  afterAll(async () => {
    await h.stop();
    await echo.close();
  });

  it('closes a connection no ALLOW rule matches, and the workload never sees it', async () => {
    const r = await exchange(port, 'hello');
    expect(r).toEqual({ echoed: '', closedByPeer: true });
    expect(echo.state.connections).toBe(0);
  });

  it('proxies a connection the policy allows', async () => {
    // No route tables here, so wait for the listener alone (the harness's apply waits for RDS too).
    const set = resources('127.0.0.1');
    h.push(set);
    const version = Snapshot.build(set).version(TypeUrl.Listener);
    await h.until('the new listener ACKed', () => h.state(TypeUrl.Listener)?.ackedVersion === version);
    const r = await exchange(port, 'hello through the mesh');
    expect(r.echoed).toBe('hello through the mesh');
    expect(echo.state.connections).toBe(1);
  });
});
