import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

function collect(res: http.IncomingMessage, resolve: (r: Reply) => void, reject: (e: Error) => void): void {
  const chunks: Buffer[] = [];
  res.on('data', (c: Buffer) => chunks.push(c));
  res.on('end', () =>
    resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString() }),
  );
  res.on('error', reject);
}

/**
 * Sends a request through a sidecar the way an application using HTTP_PROXY
 * does: an absolute-form request line to the proxy, keep-alive connections.
 */
export class ProxyClient {
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  constructor(private readonly proxyPort: number) {}

  request(
    url: string,
    headers: Record<string, string> = {},
    method = 'GET',
    body?: string | Buffer,
  ): Promise<Reply> {
    const target = new URL(url);
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port: this.proxyPort,
          method,
          path: target.href,
          headers: { host: target.host, ...headers },
          agent: this.agent,
          timeout: 10_000,
        },
        (res) => collect(res, resolve, reject),
      );
      req.on('timeout', () => req.destroy(new Error(`request to ${url} timed out`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

/**
 * A request with an explicit Host header (fetch may not set Host: it is a
 * forbidden header in the Fetch standard), as curl -H 'host: …' sends it.
 */
export function requestWithHost(
  url: string,
  host: string,
  headers: Record<string, string> = {},
  /** `localAddress`: the client's source address (127.0.0.2 is another client on Linux loopback). */
  opts: { method?: string; localAddress?: string } = {},
): Promise<Reply> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: target.hostname,
        port: target.port,
        path: `${target.pathname}${target.search}`,
        method: opts.method ?? 'GET',
        ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
        headers: { ...headers, host },
        agent: false,
        timeout: 10_000,
      },
      (res) => collect(res, resolve, reject),
    );
    req.on('timeout', () => req.destroy(new Error(`request to ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** A plain HTTP backend that answers with its name and version, and counts what it served. */
export interface Backend {
  port: number;
  version: string;
  hits: number;
  lastHeaders?: http.IncomingHttpHeaders;
  close: () => Promise<void>;
}

/** Answers a request itself (a failure, a delay…) instead of the default JSON; false to let the default answer. */
export type Behaviour = (req: http.IncomingMessage, res: http.ServerResponse, hit: number) => boolean;

export async function startBackend(
  name: string,
  version: string,
  behave?: Behaviour,
  /** Where to listen (default: a free port on 127.0.0.1). */
  listen: { host?: string; port?: number } = {},
): Promise<Backend> {
  const backend: Backend = { port: 0, version, hits: 0, close: async () => {} };
  const server = http.createServer((req, res) => {
    backend.hits++;
    backend.lastHeaders = req.headers;
    if (behave?.(req, res, backend.hits)) return;
    const body = JSON.stringify({ name, version, path: req.url });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port ?? 0, listen.host ?? '127.0.0.1', () => resolve());
  });
  backend.port = (server.address() as AddressInfo).port;
  backend.close = () =>
    new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    });
  return backend;
}

export async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`GET ${url} answered ${res.status}`);
  return (await res.json()) as T;
}

export async function postJson<T>(url: string, body: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  return { status: res.status, body: (await res.json()) as T };
}
