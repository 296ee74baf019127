import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { TypeUrl } from '@mizzen/xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  HCM,
  outboundListeners,
  PASSTHROUGH,
  ProxyHarness,
  ROUTER,
  staticCluster,
  svcRoutes,
  TCP,
} from './harness.js';

type Json = Record<string, unknown>;

/**
 * Unix domain sockets (Envoy's `pipe` addresses, which Istio emits for a
 * Sidecar's `bind: unix://…` egress listeners and `unix://` ingress
 * endpoints): listeners on a socket path and in Linux's abstract namespace,
 * and clusters whose endpoints are sockets — HTTP/1.1, HTTP/2 and opaque TCP —
 * through a real proxy, with real clients and servers on real sockets.
 */

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-uds-'));
const sock = (name: string) => path.join(dir, `${name}.sock`);
/** An abstract-namespace name unique to this run (Envoy's `@name`, Node's leading NUL). */
const abstract = `@mizzen-test-${process.pid}-echo`;

const pipe = (p: string, mode?: number) => ({ pipe: { path: p, ...(mode !== undefined ? { mode } : {}) } });

const pipeCluster = (name: string, p: string, extra: Json = {}): Json => ({
  name,
  type: 'STATIC',
  connect_timeout: '1s',
  load_assignment: {
    cluster_name: name,
    endpoints: [{ lb_endpoints: [{ endpoint: { address: pipe(p) } }] }],
  },
  ...extra,
});

const H2 = {
  'envoy.extensions.upstreams.http.v3.HttpProtocolOptions': {
    '@type': 'type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions',
    explicit_http_config: { http2_protocol_options: {} },
  },
};

function httpListener(name: string, address: Json, routes: Json[]): Json {
  return {
    name,
    address,
    filter_chains: [
      {
        filters: [
          {
            name: 'envoy.filters.network.http_connection_manager',
            typed_config: {
              '@type': HCM,
              stat_prefix: name,
              route_config: {
                name,
                virtual_hosts: [{ name: 'all', domains: ['*'], routes }],
              },
              http_filters: [{ name: 'envoy.filters.http.router', typed_config: { '@type': ROUTER } }],
            },
          },
        ],
      },
    ],
  };
}

function tcpListener(name: string, address: Json, cluster: string): Json {
  return {
    name,
    address,
    filter_chains: [
      { filters: [{ name: 'tcp', typed_config: { '@type': TCP, stat_prefix: name, cluster } }] },
    ],
  };
}

/** A GET over a Unix socket (or TCP port), as curl --unix-socket sends it. */
function get(
  target: { socketPath: string } | { port: number },
  urlPath: string,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        ...target,
        ...('port' in target ? { host: '127.0.0.1' } : {}),
        path: urlPath,
        headers: { host: 'app' },
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Sends `text` and collects what comes back until `bytes` arrived. */
function exchange(connect: () => net.Socket, text: string, bytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = connect();
    let got = '';
    c.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.length >= bytes) {
        c.end();
        resolve(got);
      }
    });
    c.on('error', reject);
    c.write(text);
  });
}

describe('Unix domain sockets (Envoy pipe addresses)', () => {
  const h = new ProxyHarness();
  const servers: net.Server[] = [];
  let h2Server: http2.Http2Server;
  let tcpPort = 0;

  const listenOn = <S extends net.Server>(server: S, p: string) =>
    new Promise<S>((r) => server.listen(p.startsWith('@') ? `\0${p.slice(1)}` : p, () => r(server)));

  beforeAll(async () => {
    // The apps: HTTP/1.1 and HTTP/2 on socket files, and an echo in the abstract namespace.
    servers.push(
      await listenOn(
        http.createServer((req, res) =>
          res.end(JSON.stringify({ app: 'h1', path: req.url, host: req.headers.host })),
        ),
        sock('app-h1'),
      ),
    );
    h2Server = http2.createServer((req, res) =>
      res.end(JSON.stringify({ app: 'h2', path: req.url, version: req.httpVersion })),
    );
    servers.push(await listenOn(h2Server, sock('app-h2')));
    servers.push(
      await listenOn(
        net.createServer((s) => s.pipe(s)),
        abstract,
      ),
    );
    // A stale socket file where the proxy's listener goes (a process killed while bound leaves one):
    // removed and rebound, as Envoy does.
    const script = `require('net').createServer().listen(${JSON.stringify(sock('egress-http'))}, () => process.kill(process.pid, 'SIGKILL'))`;
    spawnSync(process.execPath, ['-e', script], { timeout: 10_000 });
    expect(fs.lstatSync(sock('egress-http')).isSocket()).toBe(true);

    tcpPort = await h.ports.take();
    await h.start(() => ({
      [TypeUrl.Cluster]: [
        pipeCluster('app-h1', sock('app-h1')),
        pipeCluster('app-h2', sock('app-h2'), { typed_extension_protocol_options: H2 }),
        pipeCluster('app-echo', abstract),
        staticCluster('unused', [1]),
        PASSTHROUGH,
      ],
      [TypeUrl.Listener]: [
        ...outboundListeners(h.outbound),
        httpListener(`unix://${sock('egress-http')}_0`, pipe(sock('egress-http'), 0o660), [
          { match: { prefix: '/h2' }, route: { cluster: 'app-h2', timeout: '0s' } },
          { match: { prefix: '/' }, route: { cluster: 'app-h1', timeout: '0s' } },
        ]),
        httpListener('tcp-to-pipe', { socket_address: { address: '127.0.0.1', port_value: tcpPort } }, [
          { match: { prefix: '/' }, route: { cluster: 'app-h1', timeout: '0s' } },
        ]),
        tcpListener('unix://@echo_0', pipe(`@mizzen-test-${process.pid}-front`), 'app-echo'),
      ],
      [TypeUrl.RouteConfiguration]: [
        svcRoutes([{ match: { prefix: '/' }, route: { cluster: 'app-h1', timeout: '0s' } }]),
      ],
    }));
  });

  afterAll(async () => {
    await h.stop();
    for (const s of servers) s.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('serves HTTP on a socket file with its mode, to apps on socket files over HTTP/1.1 and HTTP/2', async () => {
    const socketPath = sock('egress-http');
    expect(fs.statSync(socketPath).mode & 0o777).toBe(0o660);
    const h1 = await get({ socketPath }, '/books?id=1');
    expect(h1.status).toBe(200);
    expect(JSON.parse(h1.body)).toEqual({ app: 'h1', path: '/books?id=1', host: 'app' });
    const h2 = await get({ socketPath }, '/h2/ratings');
    expect(JSON.parse(h2.body)).toEqual({ app: 'h2', path: '/h2/ratings', version: '2.0' });
  });

  it('reaches an app on a socket file from a TCP listener too', async () => {
    const r = await get({ port: tcpPort }, '/from-tcp');
    expect(JSON.parse(r.body)).toMatchObject({ app: 'h1', path: '/from-tcp' });
  });

  it('carries opaque TCP from an abstract-namespace listener to an abstract-namespace app', async () => {
    const front = `\0mizzen-test-${process.pid}-front`;
    const text = 'hello over abstract sockets\n';
    expect(await exchange(() => net.connect(front), text, text.length)).toBe(text);
  });

  it('shows socket listeners and endpoints by path on the admin API, as Envoy does', async () => {
    const admin = async <T>(what: string) =>
      (await (await fetch(`http://127.0.0.1:${h.admin}/${what}?format=json`)).json()) as T;
    const listeners = await admin<{ listener_statuses: unknown[] }>('listeners');
    expect(listeners.listener_statuses).toContainEqual({
      name: `unix://${sock('egress-http')}_0`,
      local_address: { pipe: { path: sock('egress-http') } },
    });
    type Clusters = { cluster_statuses: { name: string; host_statuses: { address: unknown }[] }[] };
    const clusters = await admin<Clusters>('clusters');
    const h1 = clusters.cluster_statuses.find((c) => c.name === 'app-h1');
    expect(h1?.host_statuses[0]?.address).toEqual({ pipe: { path: sock('app-h1') } });
  });

  it('refuses a pipe listener without a path, naming the field, and keeps serving', async () => {
    const before = h.state(TypeUrl.Listener)?.ackedVersion;
    h.push({
      [TypeUrl.Cluster]: [pipeCluster('app-h1', sock('app-h1')), PASSTHROUGH],
      [TypeUrl.Listener]: [...outboundListeners(h.outbound), tcpListener('broken', { pipe: {} }, 'app-h1')],
      [TypeUrl.RouteConfiguration]: [
        svcRoutes([{ match: { prefix: '/' }, route: { cluster: 'app-h1', timeout: '0s' } }]),
      ],
    });
    await h.until('the listener update NACKed', () => h.state(TypeUrl.Listener)?.state === 'NACKED');
    expect(h.state(TypeUrl.Listener)?.error).toMatch(
      /listener broken\.address\.pipe\.path: a pipe listener needs a path/,
    );
    expect(h.state(TypeUrl.Listener)?.ackedVersion).toBe(before);
    expect((await get({ socketPath: sock('egress-http') }, '/still')).status).toBe(200);
  });
});
