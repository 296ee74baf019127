import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger, PortAllocator } from '@mizzen/runtime';
import { AdsServer, type ResourceSet, Snapshot, TypeUrl } from '@mizzen/xds';
import { MeshProxy, type ProxyOptions } from '../src/agent/proxy.js';
import type { SecretStore } from '../src/security/secret-store.js';

/**
 * A proxy fed by a real ADS server over gRPC, with real HTTP backends: tests
 * hand it Envoy resources and send real requests, as an application with
 * HTTP_PROXY would.
 */
export const HCM =
  'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';
export const ROUTER = 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router';
export const TCP = 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy';
export const FAULT = 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault';
export const CORS = 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors';
export const CORS_POLICY = 'type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy';

type Json = Record<string, unknown>;

export interface Backend {
  port: number;
  hits: number;
  lastHeaders?: http.IncomingHttpHeaders;
  lastBody?: string;
  close: () => Promise<void>;
}

export type Behaviour = (req: http.IncomingMessage, res: http.ServerResponse, hit: number) => boolean;

/** A real HTTP server answering `{name, path}` unless `behave` answers first. */
export async function backend(name: string, behave?: Behaviour): Promise<Backend> {
  const b: Backend = { port: 0, hits: 0, close: async () => {} };
  const server = http.createServer((req, res) => {
    b.hits++;
    b.lastHeaders = req.headers;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      b.lastBody = Buffer.concat(chunks).toString();
      if (behave?.(req, res, b.hits)) return;
      const body = JSON.stringify({ name, path: req.url });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
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

export const staticCluster = (name: string, ports: number[], extra: Json = {}): Json => ({
  name,
  type: 'STATIC',
  connect_timeout: '1s',
  load_assignment: {
    cluster_name: name,
    endpoints: [
      {
        lb_endpoints: ports.map((port) => ({
          endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } },
        })),
      },
    ],
  },
  ...extra,
});

/** The outbound side of a sidecar: the capture listener plus a port-9080 HTTP listener using RDS `9080`. */
export function outboundListeners(outboundPort: number, httpFilters: Json[] = []): Json[] {
  return [
    {
      name: 'virtualOutbound',
      address: { socket_address: { address: '127.0.0.1', port_value: outboundPort } },
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
                http_filters: [
                  ...httpFilters,
                  { name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } },
                ],
              },
            },
          ],
        },
      ],
    },
  ];
}

export const PASSTHROUGH: Json = {
  name: 'PassthroughCluster',
  type: 'ORIGINAL_DST',
  lb_policy: 'CLUSTER_PROVIDED',
  connect_timeout: '1s',
};

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

export class ProxyHarness {
  readonly ports = new PortAllocator();
  readonly nodeId = 'sidecar~127.0.0.1~client.default~default.svc.cluster.local';
  ads!: AdsServer;
  proxy!: MeshProxy;
  outbound = 0;
  admin = 0;
  private readonly log = createLogger('proxy-test', { level: 'silent' });

  async start(
    initial: (h: ProxyHarness) => ResourceSet,
    secrets?: SecretStore,
    extra: Pick<ProxyOptions, 'rateLimits' | 'observer'> = {},
  ): Promise<void> {
    [this.outbound, this.admin] = await this.ports.takeMany(2);
    const health = await this.ports.take();
    this.ads = new AdsServer({ logger: this.log });
    const adsPort = await this.ads.listen(0, '127.0.0.1');
    this.push(initial(this));
    this.proxy = new MeshProxy({
      node: { id: this.nodeId, metadata: { NAMESPACE: 'default' } },
      pilot: `127.0.0.1:${adsPort}`,
      logger: this.log,
      adminHost: '127.0.0.1',
      adminPort: this.admin,
      healthPort: health,
      initialBackoffMs: 50,
      maxBackoffMs: 200,
      secrets,
      ...extra,
    });
    await this.proxy.start();
    await this.until('proxy ready and ACKed', () => this.proxy.isReady() && this.allAcked());
  }

  push(set: ResourceSet): void {
    this.ads.setSnapshot(this.nodeId, Snapshot.build(set));
  }

  /** Pushes and waits until the proxy ACKed that exact version of every type. */
  async apply(set: ResourceSet): Promise<void> {
    const snapshot = Snapshot.build(set);
    this.ads.setSnapshot(this.nodeId, snapshot);
    await this.until('config ACKed', () =>
      [TypeUrl.Cluster, TypeUrl.Listener, TypeUrl.RouteConfiguration].every((t) => {
        const s = this.state(t);
        return s?.state === 'ACKED' && s.ackedVersion === snapshot.version(t);
      }),
    );
  }

  state(typeUrl: string) {
    return this.ads
      .status()
      .find((x) => x.node.id === this.nodeId)
      ?.types.find((t) => t.typeUrl === typeUrl);
  }

  allAcked(): boolean {
    return [
      TypeUrl.Cluster,
      TypeUrl.ClusterLoadAssignment,
      TypeUrl.Listener,
      TypeUrl.RouteConfiguration,
    ].every((t) => this.state(t)?.state === 'ACKED');
  }

  async until(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (await check()) return;
      await sleep(20);
    }
    throw new Error(`timed out waiting for ${what}`);
  }

  /** A request the way an application with HTTP_PROXY sends it: absolute-form, to the outbound port. */
  request(url: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const u = new URL(url);
      const req = http.request(
        {
          host: '127.0.0.1',
          port: this.outbound,
          path: url,
          method,
          headers: { host: u.host, ...headers },
          agent: false,
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c) => {
            text += c;
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  async stop(): Promise<void> {
    await this.proxy?.stop();
    await this.ads?.close();
  }
}

/** The route table named `9080` with one virtual host for `svc`. */
export function svcRoutes(routes: Json[], vhostExtra: Json = {}): Json {
  return {
    name: '9080',
    virtual_hosts: [{ name: 'svc:9080', domains: ['svc', 'svc:9080'], routes, ...vhostExtra }],
  };
}
