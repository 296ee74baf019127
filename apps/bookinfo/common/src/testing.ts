import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

/** One request as the proxy received it. */
export interface ProxiedRequest {
  method: string;
  /** The request target exactly as sent: `http://reviews:9080/reviews/0` for absolute form. */
  target: string;
  headers: IncomingHttpHeaders;
}

export interface ForwardProxy {
  /** http://127.0.0.1:PORT, for HTTP_PROXY. */
  url: string;
  /** Every request received, in order. */
  readonly requests: ProxiedRequest[];
  /** The authority of every CONNECT received (a client that tunnels instead of sending absolute form). */
  readonly connects: string[];
  /** How many client connections the proxy has accepted so far. */
  readonly connections: number;
  /** Sends requests for `authority` (e.g. `reviews:9080`) to `origin` (e.g. `http://127.0.0.1:41234`). */
  route(authority: string, origin: string): void;
  close(): Promise<void>;
}

/**
 * A tiny HTTP forward proxy for tests, standing in for a sidecar's outbound
 * listener: it accepts absolute-form requests, records them, and forwards
 * each to the origin routed for its `host:port`. Unknown authorities get 502
 * and unreachable origins 503 (as Envoy answers); CONNECT is recorded and
 * refused, so a client that tunnels fails loudly.
 */
export async function startForwardProxy(routes: Record<string, string> = {}): Promise<ForwardProxy> {
  const table = new Map(Object.entries(routes));
  const requests: ProxiedRequest[] = [];
  const connects: string[] = [];
  const agent = new http.Agent({ keepAlive: true });
  let connections = 0;

  const server = http.createServer((req, res) => {
    const target = req.url ?? '';
    requests.push({ method: req.method ?? '', target, headers: req.headers });
    let url: URL;
    try {
      url = new URL(target);
      if (url.protocol !== 'http:' || !target.startsWith('http://')) throw new Error('not absolute form');
    } catch {
      res
        .writeHead(400, { 'content-type': 'text/plain' })
        .end(`not an absolute-form http request: ${target}\n`);
      return;
    }
    const authority = url.port ? url.host : `${url.host}:80`;
    const origin = table.get(authority);
    if (!origin) {
      res.writeHead(502, { 'content-type': 'text/plain' }).end(`no route to ${authority}\n`);
      return;
    }
    const upstream = new URL(origin);
    const headers = { ...req.headers };
    delete headers['proxy-connection'];
    const out = http.request(
      {
        agent,
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: `${url.pathname}${url.search}`,
        headers,
      },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    out.on('error', () => {
      if (!res.headersSent) res.writeHead(503, { 'content-type': 'text/plain' });
      res.end('upstream connect error\n');
    });
    req.pipe(out);
  });
  server.on('connection', () => {
    connections++;
  });
  server.on('connect', (req, socket) => {
    connects.push(req.url ?? '');
    socket.end('HTTP/1.1 405 Method Not Allowed\r\ncontent-length: 0\r\n\r\n');
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    connects,
    get connections() {
      return connections;
    },
    route: (authority, origin) => {
      table.set(authority, origin);
    },
    close: async () => {
      server.closeAllConnections();
      agent.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface StalledServer {
  url: string;
  close(): Promise<void>;
}

/** A real HTTP server that accepts requests and never answers them, to exercise timeouts. */
export async function startStalledServer(): Promise<StalledServer> {
  const held: http.ServerResponse[] = [];
  const server = http.createServer((_req, res) => {
    held.push(res);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      for (const res of held) res.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
