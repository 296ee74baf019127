import http, { type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HttpClient, UpstreamError } from '../src/client.js';
import { type ForwardProxy, startForwardProxy } from '../src/testing.js';

interface Origin {
  url: string;
  port: number;
  seen: { url: string; headers: IncomingHttpHeaders }[];
  connections: number;
  close(): Promise<void>;
}

/** A real HTTP server with a few answers a service might give. */
async function startOrigin(): Promise<Origin> {
  const held: http.ServerResponse[] = [];
  const origin = { seen: [], connections: 0 } as unknown as Origin;
  const server = http.createServer((req, res) => {
    origin.seen.push({ url: req.url ?? '', headers: req.headers });
    if (req.url === '/slow') {
      held.push(res);
      return;
    }
    if (req.url?.startsWith('/status/')) {
      res.writeHead(Number(req.url.slice(8)), { 'content-type': 'application/json' }).end('{"error":"nope"}');
      return;
    }
    if (req.url === '/not-json') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('hello');
      return;
    }
    if (req.url === '/big') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(`"${'x'.repeat(2 * 1024 * 1024)}"`);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ path: req.url }));
  });
  server.on('connection', () => {
    origin.connections++;
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  origin.port = (server.address() as AddressInfo).port;
  origin.url = `http://127.0.0.1:${origin.port}`;
  origin.close = async () => {
    for (const res of held) res.destroy();
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  };
  return origin;
}

async function failure(p: Promise<unknown>): Promise<UpstreamError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(UpstreamError);
    return err as UpstreamError;
  }
  throw new Error('expected the call to fail');
}

describe('HttpClient without a proxy', () => {
  let origin: Origin;
  const client = new HttpClient();

  beforeAll(async () => {
    origin = await startOrigin();
  });
  afterAll(async () => {
    await client.close();
    await origin.close();
  });

  it('GETs JSON with the given headers over kept-alive connections', async () => {
    const before = origin.connections;
    for (let i = 0; i < 6; i++) {
      const body = await client.getJson(`${origin.url}/reviews/${i}`, {
        headers: { 'x-request-id': `r${i}` },
        timeoutMs: 2000,
      });
      expect(body).toEqual({ path: `/reviews/${i}` });
    }
    expect(origin.seen.at(-1)?.headers['x-request-id']).toBe('r5');
    expect(origin.seen.at(-1)?.headers.accept).toBe('application/json');
    // undici's pool may open a second connection while the first is being released, but no more.
    expect(origin.connections - before).toBeLessThanOrEqual(2);
  });

  it('turns non-2xx answers, bodies that are not JSON and oversized bodies into UpstreamErrors', async () => {
    const err = await failure(client.getJson(`${origin.url}/status/503`, { timeoutMs: 2000 }));
    expect(err.status).toBe(503);
    expect(err.message).toBe(`GET ${origin.url}/status/503 answered 503`);
    expect((await failure(client.getJson(`${origin.url}/not-json`, { timeoutMs: 2000 }))).message).toContain(
      'not JSON',
    );
    expect((await failure(client.getJson(`${origin.url}/big`, { timeoutMs: 2000 }))).message).toContain(
      'more than',
    );
  });

  it('gives up at the deadline', async () => {
    const started = Date.now();
    const err = await failure(client.getJson(`${origin.url}/slow`, { timeoutMs: 150 }));
    expect(err.message).toBe(`GET ${origin.url}/slow timed out after 150ms`);
    expect(err.status).toBeUndefined();
    expect(Date.now() - started).toBeLessThan(2000);
  });

  it('says when nothing listens', async () => {
    const closed = await startOrigin();
    await closed.close();
    const err = await failure(client.getJson(`${closed.url}/x`, { timeoutMs: 2000 }));
    expect(err.message).toBe(`GET ${closed.url}/x failed: connection refused`);
  });
});

describe('HttpClient through an HTTP forward proxy', () => {
  let origin: Origin;
  let proxy: ForwardProxy;
  let client: HttpClient;

  beforeAll(async () => {
    origin = await startOrigin();
    proxy = await startForwardProxy({ 'reviews:9080': origin.url });
    client = new HttpClient({ httpProxy: proxy.url, noProxy: '' });
  });
  afterAll(async () => {
    await client.close();
    await proxy.close();
    await origin.close();
  });

  it('sends absolute-form requests for service names, never CONNECT', async () => {
    const body = await client.getJson('http://reviews:9080/reviews/0', {
      headers: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
      timeoutMs: 2000,
    });
    expect(body).toEqual({ path: '/reviews/0' });
    expect(proxy.connects).toEqual([]);
    const last = proxy.requests.at(-1)!;
    expect(last.method).toBe('GET');
    expect(last.target).toBe('http://reviews:9080/reviews/0');
    expect(last.headers.host).toBe('reviews:9080');
    expect(last.headers.traceparent).toBe('00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
  });

  it('keeps connections to the proxy alive across calls', async () => {
    const before = proxy.connections;
    for (let i = 0; i < 6; i++) {
      await client.getJson(`http://reviews:9080/reviews/${i}`, { timeoutMs: 2000 });
    }
    expect(proxy.connections - before).toBeLessThanOrEqual(2);
  });

  it('reports what the proxy answers, such as 502 for a host it cannot route', async () => {
    const err = await failure(client.getJson('http://nowhere:9080/x', { timeoutMs: 2000 }));
    expect(err.status).toBe(502);
    expect(proxy.requests.at(-1)?.target).toBe('http://nowhere:9080/x');
  });

  it('goes direct for hosts in NO_PROXY', async () => {
    const direct = new HttpClient({ httpProxy: proxy.url, noProxy: '127.0.0.1' });
    try {
      const before = proxy.requests.length;
      expect(await direct.getJson(`${origin.url}/direct`, { timeoutMs: 2000 })).toEqual({ path: '/direct' });
      expect(proxy.requests.length).toBe(before);
    } finally {
      await direct.close();
    }
  });

  it('fails cleanly when the proxy itself is down', async () => {
    const gone = await startForwardProxy();
    await gone.close();
    const viaGone = new HttpClient({ httpProxy: gone.url });
    try {
      const err = await failure(viaGone.getJson('http://reviews:9080/reviews/0', { timeoutMs: 2000 }));
      expect(err.message).toBe('GET http://reviews:9080/reviews/0 failed: connection refused');
    } finally {
      await viaGone.close();
    }
  });
});
