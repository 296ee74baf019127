import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/config.js';
import { startupFailure } from '../src/lifecycle.js';
import { createService, listen, type RunningService } from '../src/server.js';

describe('createService and listen', () => {
  const running: RunningService[] = [];
  afterEach(async () => {
    await Promise.all(running.splice(0).map((s) => s.close()));
  });

  it('serves on a free port and answers unknown routes and failures with { error }', async () => {
    const app = createService({ name: 'demo', logLevel: 'silent' });
    app.get('/ok', async () => ({ ok: true }));
    app.get('/boom', async () => {
      throw new Error('secret detail');
    });
    app.get('/teapot', async () => {
      throw Object.assign(new Error('short and stout'), { statusCode: 418 });
    });
    const service = await listen(app, { host: '127.0.0.1', port: 0 });
    running.push(service);
    expect(service.port).toBeGreaterThan(0);
    expect(service.url).toBe(`http://127.0.0.1:${service.port}`);

    expect(await (await fetch(`${service.url}/ok`)).json()).toEqual({ ok: true });
    const missing = await fetch(`${service.url}/nope?x=1`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: 'no route for GET /nope' });
    const boom = await fetch(`${service.url}/boom`);
    expect(boom.status).toBe(500);
    expect(await boom.json()).toEqual({ error: 'internal error' });
    const teapot = await fetch(`${service.url}/teapot`);
    expect(teapot.status).toBe(418);
    expect(await teapot.json()).toEqual({ error: 'short and stout' });
  });

  it('rejects when the port is taken, and says so in one line', async () => {
    const first = await listen(createService({ name: 'a', logLevel: 'silent' }), {
      host: '127.0.0.1',
      port: 0,
    });
    running.push(first);
    const err = await listen(createService({ name: 'b', logLevel: 'silent' }), {
      host: '127.0.0.1',
      port: first.port,
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(startupFailure(err)).toBe(`cannot listen on 127.0.0.1:${first.port}: address already in use`);
  });

  it('reports configuration errors as their own sentence', () => {
    expect(startupFailure(new ConfigError("PORT must be a port number from 0 to 65535, got 'x'"))).toBe(
      "PORT must be a port number from 0 to 65535, got 'x'",
    );
    expect(startupFailure(new Error('two\n  lines'))).toBe('two lines');
  });
});
