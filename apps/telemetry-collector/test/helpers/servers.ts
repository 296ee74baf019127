import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface TextServer {
  port: number;
  url: string;
  /** What the next request gets. */
  body: string;
  /** The status the next request gets (200 unless a test makes the target fail). */
  status: number;
  hits: number;
  close(): Promise<void>;
}

/** A real HTTP server answering every GET with `body` (a proxy's /stats/prometheus stand-in). */
export async function textServer(body = '', contentType = 'text/plain; version=0.0.4'): Promise<TextServer> {
  const server = http.createServer((req, res) => {
    state.hits++;
    const text = typeof state.body === 'string' ? state.body : '';
    res.writeHead(state.status, { 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
    res.end(req.method === 'HEAD' ? undefined : text);
  });
  const state: TextServer = {
    port: 0,
    url: '',
    body,
    status: 200,
    hits: 0,
    close: () => closeServer(server),
  };
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  state.port = (server.address() as AddressInfo).port;
  state.url = `http://127.0.0.1:${state.port}/stats/prometheus`;
  return state;
}

/** A server that routes by path to JSON producers (pilot's debug API stand-in). */
export async function jsonServer(routes: Record<string, () => unknown>): Promise<{
  port: number;
  url: string;
  close(): Promise<void>;
}> {
  const server = http.createServer((req, res) => {
    const route = routes[(req.url ?? '/').split('?')[0]!];
    if (!route) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: 'not found' }));
      return;
    }
    const text = JSON.stringify(route());
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return { port, url: `http://127.0.0.1:${port}`, close: () => closeServer(server) };
}

export function closeServer(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => resolve());
  });
}
