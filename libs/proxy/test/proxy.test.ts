import http from 'node:http';
import type { AddressInfo } from 'node:net';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger, freePort } from '@mizzen/runtime';
import { AdsServer, type ResourceSet, Snapshot, TypeUrl } from '@mizzen/xds';
import { ProxyAgent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MeshProxy } from '../src/agent/proxy.js';

/**
 * The proxy driven by a real ADS server over gRPC with hand-written Envoy
 * resources, in front of real HTTP backends: what each Envoy field does on
 * the wire, independent of pilot's translation.
 */
const NODE_ID = 'sidecar~127.0.0.1~client.default~default.svc.cluster.local';
const HCM =
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
const ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';
const TCP = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';

interface Backend {
  port: number;
  hits: number;
  lastHeaders?: http.IncomingHttpHeaders;
  close: () => Promise<void>;
}

async function backend(
  name: string,
  behave?: (req: http.IncomingMessage, res: http.ServerResponse, hit: number) => boolean,
): Promise<Backend> {
  const b: Backend = { port: 0, hits: 0, close: async () => {} };
  const server = http.createServer((req, res) => {
    b.hits++;
    b.lastHeaders = req.headers;
    if (behave?.(req, res, b.hits)) return;
    const body = JSON.stringify({ name, path: req.url });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  b.port = (server.address() as AddressInfo).port;
  b.close = () =>
    new Promise((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return b;
}

const staticCluster = (name: string, port: number) => ({
  name,
  type: 'STATIC',
  connect_timeout: '1s',
  load_assignment: {
    cluster_name: name,
    endpoints: [
      {
        lb_endpoints: [
          { endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } },
        ],
      },
    ],
  },
});

describe('proxy configured over ADS', () => {
  const log = createLogger('proxy-test', { level: 'silent' });
  let ads: AdsServer;
  let adsPort: number;
  let proxy: MeshProxy;
  let outbound: number;
  let admin: number;
  let health: number;
  const b: Record<string, Backend> = {};
  let busy: net.Server;
  let busyPort: number;

  const routes = (extra: Record<string, unknown>[] = [], weights: [number, number] = [100, 0]) => ({
    name: '9080',
    virtual_hosts: [
      {
        name: 'svc:9080',
        domains: ['svc', 'svc:9080'],
        include_request_attempt_count: true,
        routes: [
          ...extra,
          {
            name: 'jason',
            match: { prefix: '/', headers: [{ name: 'end-user', string_match: { exact: 'jason' } }] },
            route: { cluster: 'v2', timeout: '0s' },
          },
          {
            name: 'flaky',
            match: { prefix: '/flaky' },
            route: {
              cluster: 'flaky',
              timeout: '0s',
              retry_policy: {
                retry_on: 'retriable-status-codes',
                num_retries: 3,
                retriable_status_codes: [503],
              },
            },
          },
          { name: 'slow', match: { prefix: '/slow' }, route: { cluster: 'slow', timeout: '0.3s' } },
          {
            name: 'teapot',
            match: { path: '/teapot' },
            direct_response: { status: 418, body: { inline_string: 'short and stout' } },
          },
          {
            name: 'moved',
            match: { prefix: '/old/' },
            redirect: { prefix_rewrite: '/new/', response_code: 'FOUND' },
          },
          {
            name: 'rewrite',
            match: { prefix: '/api/' },
            route: {
              cluster: 'v1',
              prefix_rewrite: '/v1/',
              host_rewrite_literal: 'internal.svc',
              timeout: '0s',
            },
            request_headers_to_add: [
              { header: { key: 'x-route', value: 'rewrite' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
            ],
            response_headers_to_add: [{ header: { key: 'x-served-by', value: 'mizzen' } }],
            request_headers_to_remove: ['x-secret'],
          },
          {
            name: 'split',
            match: { prefix: '/' },
            route: {
              weighted_clusters: {
                clusters: [
                  { name: 'v1', weight: weights[0] },
                  { name: 'v2', weight: weights[1] },
                ],
              },
              timeout: '0s',
            },
          },
        ],
      },
      {
        name: 'eds:9080',
        domains: ['eds', 'eds:9080'],
        routes: [{ match: { prefix: '/' }, route: { cluster: 'eds', timeout: '0s' } }],
      },
      {
        name: 'allow_any',
        domains: ['*'],
        routes: [{ match: { prefix: '/' }, route: { cluster: 'PassthroughCluster', timeout: '0s' } }],
      },
    ],
  });

  const listeners = (extra: Record<string, unknown>[] = []) => [
    {
      name: 'virtualOutbound',
      address: { socket_address: { address: '127.0.0.1', port_value: outbound } },
      use_original_dst: true,
      filter_chains: [
        {
          filters: [
            { name: 'tcp', typed_config: { '@type': TCP, stat_prefix: 'pt', cluster: 'PassthroughCluster' } },
          ],
        },
      ],
    },
    {
      name: '0.0.0.0_9080',
      address: { socket_address: { address: '0.0.0.0', port_value: 9080 } },
      bind_to_port: false,
      filter_chains: [
        {
          filters: [
            {
              name: 'envoy.filters.network.http_connection_manager',
              typed_config: {
                '@type': HCM,
                stat_prefix: 'outbound_9080',
                rds: { route_config_name: '9080', config_source: { ads: {}, resource_api_version: 'V3' } },
                http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } }],
              },
            },
          ],
        },
      ],
    },
    ...extra,
  ];

  const edsCla = (port: number) => ({
    cluster_name: 'eds',
    endpoints: [
      {
        lb_endpoints: [
          { endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } } },
        ],
      },
    ],
  });

  const resources = (over: Partial<Record<TypeUrl, Record<string, unknown>[]>> = {}): ResourceSet => ({
    [TypeUrl.Cluster]: [
      staticCluster('v1', b.v1!.port),
      staticCluster('v2', b.v2!.port),
      staticCluster('flaky', b.flaky!.port),
      staticCluster('slow', b.slow!.port),
      {
        name: 'eds',
        type: 'EDS',
        connect_timeout: '1s',
        eds_cluster_config: { eds_config: { ads: {} }, service_name: 'eds' },
      },
      {
        name: 'PassthroughCluster',
        type: 'ORIGINAL_DST',
        lb_policy: 'CLUSTER_PROVIDED',
        connect_timeout: '1s',
      },
    ],
    [TypeUrl.ClusterLoadAssignment]: [edsCla(b.v1!.port)],
    [TypeUrl.Listener]: listeners(),
    [TypeUrl.RouteConfiguration]: [routes()],
    ...over,
  });

  const push = (set: ResourceSet) => ads.setSnapshot(NODE_ID, Snapshot.build(set));

  const state = (type: string) => {
    const s = ads.status().find((x) => x.node.id === NODE_ID);
    return s?.types.find((t) => t.type === type);
  };

  const until = async (what: string, check: () => boolean | Promise<boolean>, ms = 10_000) => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (await check()) return;
      await sleep(25);
    }
    throw new Error(`timed out waiting for ${what}`);
  };

  /** A request the way an application with HTTP_PROXY sends it: absolute-form, to the outbound port. */
  const viaProxy = (url: string, headers: Record<string, string> = {}, method = 'GET') =>
    new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
      const u = new URL(url);
      const req = http.request(
        {
          host: '127.0.0.1',
          port: outbound,
          path: url,
          method,
          headers: { host: u.host, ...headers },
          agent: false,
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c) => {
            body += c;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        },
      );
      req.on('error', reject);
      req.end();
    });

  beforeAll(async () => {
    b.v1 = await backend('v1');
    b.v2 = await backend('v2');
    b.flaky = await backend('flaky', (_req, res, hit) => {
      if (hit % 3 !== 0) {
        res.writeHead(503).end('try again');
        return true;
      }
      return false;
    });
    b.slow = await backend('slow', (_req, res) => {
      setTimeout(() => res.end('late'), 2000).unref();
      return true;
    });
    busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    busyPort = (busy.address() as AddressInfo).port;
    [outbound, admin, health] = await Promise.all([freePort(), freePort(), freePort()]);
    ads = new AdsServer({ logger: log });
    adsPort = await ads.listen(0, '127.0.0.1');
    push(resources());
    proxy = new MeshProxy({
      node: { id: NODE_ID, metadata: { NAMESPACE: 'default' } },
      pilot: `127.0.0.1:${adsPort}`,
      logger: log,
      adminHost: '127.0.0.1',
      adminPort: admin,
      healthPort: health,
      initialBackoffMs: 50,
      maxBackoffMs: 200,
    });
    await proxy.start();
    await until('proxy ready', () => proxy.isReady());
    // Ready is the proxy's own view; the server learns of the last ACK a moment later.
    await until('every type ACKed at the server', () =>
      ['CDS', 'EDS', 'LDS', 'RDS'].every((t) => state(t)?.state === 'ACKED'),
    );
  });

  afterAll(async () => {
    await proxy?.stop();
    await ads?.close();
    await Promise.all(Object.values(b).map((x) => x.close()));
    busy?.close();
  });

  it('ACKs every type and reports LIVE on the admin and health ports', async () => {
    for (const t of ['CDS', 'EDS', 'LDS', 'RDS']) expect(state(t)?.state, t).toBe('ACKED');
    const ready = await fetch(`http://127.0.0.1:${admin}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.text()).toBe('LIVE\n');
    expect((await fetch(`http://127.0.0.1:${health}/healthz/ready`)).status).toBe(200);
  });

  it('routes an HTTP_PROXY request by Host through the route table to the chosen cluster', async () => {
    const r = await viaProxy('http://svc:9080/hello');
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toEqual({ name: 'v1', path: '/hello' });
    expect(b.v1!.lastHeaders?.['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(b.v1!.lastHeaders?.['x-envoy-attempt-count']).toBe('1');
    expect(r.headers['x-envoy-upstream-service-time']).toBeDefined();
    expect(JSON.parse((await viaProxy('http://svc:9080/', { 'end-user': 'jason' })).body).name).toBe('v2');
    expect(JSON.parse((await viaProxy('http://eds:9080/x')).body).name).toBe('v1');
  });

  it('applies rewrites and header edits at the route level', async () => {
    const r = await viaProxy('http://svc:9080/api/items?q=1', { 'x-secret': 's', 'x-route': 'old' });
    expect(JSON.parse(r.body)).toEqual({ name: 'v1', path: '/v1/items?q=1' });
    expect(b.v1!.lastHeaders?.host).toBe('internal.svc');
    expect(b.v1!.lastHeaders?.['x-route']).toBe('rewrite');
    expect(b.v1!.lastHeaders?.['x-secret']).toBeUndefined();
    expect(r.headers['x-served-by']).toBe('mizzen');
  });

  it('answers direct responses and redirects itself', async () => {
    const teapot = await viaProxy('http://svc:9080/teapot');
    expect(teapot.status).toBe(418);
    expect(teapot.body).toBe('short and stout');
    const moved = await viaProxy('http://svc:9080/old/page?x=1');
    expect(moved.status).toBe(302);
    expect(moved.headers.location).toBe('http://svc:9080/new/page?x=1');
  });

  it('retries retriable status codes on the next attempt and returns the success', async () => {
    const before = b.flaky!.hits;
    const r = await viaProxy('http://svc:9080/flaky');
    expect(r.status).toBe(200);
    expect(b.flaky!.hits - before).toBe(3);
    expect(b.flaky!.lastHeaders?.['x-envoy-attempt-count']).toBe('3');
  });

  it('answers 504 when the route timeout passes, and 503 when the upstream refuses connections', async () => {
    const slow = await viaProxy('http://svc:9080/slow');
    expect(slow.status).toBe(504);
    expect(slow.body).toBe('upstream request timeout');
    const dead = await freePort();
    push(resources({ [TypeUrl.ClusterLoadAssignment]: [edsCla(dead)] }));
    await until(
      'EDS update',
      () => state('EDS')?.state === 'ACKED' && state('EDS')?.ackedVersion === state('EDS')?.sentVersion,
    );
    await until('dead endpoint in use', async () => (await viaProxy('http://eds:9080/')).status === 503);
    const r = await viaProxy('http://eds:9080/');
    expect(r.body).toContain('upstream connect error');
    push(resources());
    await until('endpoint restored', async () => (await viaProxy('http://eds:9080/')).status === 200);
  });

  it('shifts weighted traffic when the route table changes', async () => {
    push(resources({ [TypeUrl.RouteConfiguration]: [routes([], [0, 100])] }));
    await until(
      'all traffic on v2',
      async () => JSON.parse((await viaProxy('http://svc:9080/')).body).name === 'v2',
    );
    const counts: Record<string, number> = {};
    push(resources({ [TypeUrl.RouteConfiguration]: [routes([], [50, 50])] }));
    await until(
      'split in force',
      async () => JSON.parse((await viaProxy('http://svc:9080/')).body).name === 'v1',
    );
    for (let i = 0; i < 400; i++) {
      const n = JSON.parse((await viaProxy('http://svc:9080/')).body).name as string;
      counts[n] = (counts[n] ?? 0) + 1;
    }
    expect(counts.v1).toBeGreaterThan(140);
    expect(counts.v2).toBeGreaterThan(140);
    push(resources());
    await until(
      'back to v1',
      async () => JSON.parse((await viaProxy('http://svc:9080/')).body).name === 'v1',
    );
  });

  it('passes unknown destinations through to where they were going (ORIGINAL_DST), by absolute URL and CONNECT', async () => {
    const r = await viaProxy(`http://127.0.0.1:${b.v2!.port}/direct`);
    expect(JSON.parse(r.body)).toEqual({ name: 'v2', path: '/direct' });
    // undici's ProxyAgent tunnels with CONNECT: the tunnel for svc:9080 is routed like any request for that port.
    const agent = new ProxyAgent({ uri: `http://127.0.0.1:${outbound}` });
    try {
      const res = await request('http://svc:9080/tunnel', { dispatcher: agent });
      expect(res.statusCode).toBe(200);
      expect(await res.body.json()).toEqual({ name: 'v1', path: '/tunnel' });
      const raw = await request(`http://127.0.0.1:${b.v2!.port}/raw`, { dispatcher: agent });
      expect(await raw.body.json()).toEqual({ name: 'v2', path: '/raw' });
    } finally {
      await agent.close();
    }
  });

  it('NACKs a route table it cannot compile and keeps serving the old one', async () => {
    const bad = routes([
      { name: 'bad', match: { safe_regex: { regex: '(unclosed' } }, route: { cluster: 'v2' } },
    ]);
    push(resources({ [TypeUrl.RouteConfiguration]: [bad] }));
    await until('RDS NACK', () => state('RDS')?.state === 'NACKED');
    expect(state('RDS')?.error).toMatch(/invalid RE2 regex/);
    expect((await viaProxy('http://svc:9080/')).status).toBe(200);
    push(resources());
    await until('RDS ACK again', () => state('RDS')?.state === 'ACKED');
  });

  it('NACKs a listener it cannot bind, naming the port, and keeps the others', async () => {
    const taken = {
      name: 'taken',
      address: { socket_address: { address: '127.0.0.1', port_value: busyPort } },
      filter_chains: [
        { filters: [{ name: 'tcp', typed_config: { '@type': TCP, stat_prefix: 't', cluster: 'v1' } }] },
      ],
    };
    push(resources({ [TypeUrl.Listener]: listeners([taken]) }));
    await until('LDS NACK', () => state('LDS')?.state === 'NACKED');
    expect(state('LDS')?.error).toContain(`127.0.0.1:${busyPort}`);
    expect(state('LDS')?.error).toContain('EADDRINUSE');
    expect((await viaProxy('http://svc:9080/')).status).toBe(200);
    push(resources());
    await until('LDS ACK again', () => state('LDS')?.state === 'ACKED');
  });

  it('serves a bound inbound listener with an inline route table and a TCP listener', async () => {
    const [httpPort, tcpPort] = await Promise.all([freePort(), freePort()]);
    const inbound = {
      name: 'inbound_http',
      address: { socket_address: { address: '127.0.0.1', port_value: httpPort } },
      filter_chains: [
        {
          filters: [
            {
              name: 'hcm',
              typed_config: {
                '@type': HCM,
                stat_prefix: 'inbound',
                route_config: {
                  name: 'inbound|9080||',
                  virtual_hosts: [
                    {
                      name: 'inbound',
                      domains: ['*'],
                      routes: [{ match: { prefix: '/' }, route: { cluster: 'v2' } }],
                    },
                  ],
                },
                http_filters: [{ name: 'router', typed_config: { '@type': ROUTER } }],
              },
            },
          ],
        },
      ],
    };
    const tcp = {
      name: 'inbound_tcp',
      address: { socket_address: { address: '127.0.0.1', port_value: tcpPort } },
      filter_chains: [
        { filters: [{ name: 'tcp', typed_config: { '@type': TCP, stat_prefix: 't', cluster: 'v1' } }] },
      ],
    };
    push(resources({ [TypeUrl.Listener]: listeners([inbound, tcp]) }));
    await until(
      'LDS with inbound',
      () => state('LDS')?.state === 'ACKED' && state('LDS')?.ackedVersion === state('LDS')?.sentVersion,
    );
    await until(
      'inbound bound',
      async () => (await fetch(`http://127.0.0.1:${httpPort}/in`).catch(() => undefined))?.status === 200,
    );
    expect(await (await fetch(`http://127.0.0.1:${httpPort}/in`)).json()).toEqual({
      name: 'v2',
      path: '/in',
    });
    expect(await (await fetch(`http://127.0.0.1:${tcpPort}/opaque`)).json()).toEqual({
      name: 'v1',
      path: '/opaque',
    });
    push(resources());
    await until(
      'inbound closed',
      async () => (await fetch(`http://127.0.0.1:${httpPort}/`).catch(() => undefined)) === undefined,
    );
  });

  it('keeps serving its last good config while the xDS server is gone, then re-syncs', async () => {
    await ads.close();
    for (let i = 0; i < 20; i++) expect((await viaProxy('http://svc:9080/')).status).toBe(200);
    ads = new AdsServer({ logger: log });
    await until('ADS port free again', async () => {
      try {
        await ads.listen(adsPort, '127.0.0.1');
        return true;
      } catch {
        return false;
      }
    });
    push(resources({ [TypeUrl.RouteConfiguration]: [routes([], [0, 100])] }));
    await until('re-synced', () => state('RDS')?.state === 'ACKED', 15_000);
    await until(
      'new config in force',
      async () => JSON.parse((await viaProxy('http://svc:9080/')).body).name === 'v2',
    );
  });

  it("shows what it runs in Envoy's config_dump and clusters formats", async () => {
    const dump = (await (await fetch(`http://127.0.0.1:${admin}/config_dump?include_eds`)).json()) as {
      configs: {
        '@type': string;
        dynamic_listeners?: { name: string }[];
        dynamic_route_configs?: unknown[];
        dynamic_endpoint_configs?: unknown[];
      }[];
    };
    const types = dump.configs.map((c) => c['@type'].split('.').pop());
    expect(types).toEqual([
      'BootstrapConfigDump',
      'ClustersConfigDump',
      'ListenersConfigDump',
      'RoutesConfigDump',
      'SecretsConfigDump',
      'EndpointsConfigDump',
    ]);
    expect(dump.configs[4]).toEqual({
      '@type': 'type.googleapis.com/envoy.admin.v3.SecretsConfigDump',
      dynamic_active_secrets: [],
    });
    expect(dump.configs[2]!.dynamic_listeners!.map((l) => l.name)).toEqual([
      '0.0.0.0_9080',
      'virtualOutbound',
    ]);
    const clusters = await (await fetch(`http://127.0.0.1:${admin}/clusters`)).text();
    expect(clusters).toContain(`v1::127.0.0.1:${b.v1!.port}::health_flags::healthy`);
    const level = await fetch(`http://127.0.0.1:${admin}/logging?level=debug`, { method: 'POST' });
    expect(await level.text()).toContain('proxy: debug');
    expect((await fetch(`http://127.0.0.1:${admin}/logging?level=loud`, { method: 'POST' })).status).toBe(
      400,
    );
    await fetch(`http://127.0.0.1:${admin}/logging?level=silent`, { method: 'POST' });
  });
});
