import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  authorizationCheckMethod,
  GrpcCallError,
  serveAuthorization,
  UnaryChannel,
} from '../src/envoy-grpc.js';

/**
 * The Envoy API's external authorization service over real gRPC: a grpc-js
 * server (`serveAuthorization`) and a `UnaryChannel` calling it, each side
 * seeing the other's Envoy JSON exactly as sent.
 */
type Json = Record<string, unknown>;

describe('Envoy gRPC services (envoy.service.auth.v3.Authorization/Check)', () => {
  const seen: { request?: Json; authority?: string } = {};
  const channels: UnaryChannel[] = [];
  let server: Awaited<ReturnType<typeof serveAuthorization>>;
  let port = 0;

  beforeAll(async () => {
    server = await serveAuthorization<Json, Json>((request, call) => {
      seen.request = request;
      seen.authority = call.authority;
      const http = (request.attributes as Json | undefined)?.request as Json | undefined;
      const headers = ((http?.http as Json | undefined)?.headers ?? {}) as Record<string, string>;
      // A server that never answers: the caller's deadline ends the call.
      if (headers['x-hang']) return undefined;
      return {
        status: { code: headers['x-allow'] ? 0 : 7 },
        ...(headers['x-allow']
          ? { ok_response: { headers: [{ header: { key: 'x-user', value: 'alice' } }] } }
          : { denied_response: { status: { code: 'Unauthorized' }, body: 'no' } }),
      };
    });
    port = server.port;
  });

  afterAll(() => {
    for (const c of channels) c.close();
    server?.close();
  });

  const channel = (target: { port: number; authority?: string }) => {
    const c = new UnaryChannel({ address: '127.0.0.1', ...target });
    channels.push(c);
    return c;
  };

  const request = (headers: Record<string, string>) => ({
    attributes: {
      source: {
        address: { socket_address: { address: '10.0.0.7', port_value: 4321 } },
        principal: 'spiffe://cluster.local/ns/default/sa/client',
      },
      request: {
        time: '2025-01-02T03:04:05.678Z',
        http: { id: '12345678901234567890', method: 'GET', path: '/a?b=1', headers },
      },
      context_extensions: { tier: 'gold' },
    },
  });

  it('carries a CheckRequest and its CheckResponse as Envoy JSON, with the :authority asked for', async () => {
    const c = channel({ port, authority: 'outbound_.9000_._.authz.default.svc.cluster.local' });
    const res = await c.call(authorizationCheckMethod<unknown, Json>(), request({ 'x-allow': '1' }), 5_000);
    expect(res).toEqual({
      status: { code: 0 },
      ok_response: { headers: [{ header: { key: 'x-user', value: 'alice' } }] },
    });
    expect(seen.request).toEqual(request({ 'x-allow': '1' }));
    expect(seen.authority).toBe('outbound_.9000_._.authz.default.svc.cluster.local');
    const denied = await c.call(authorizationCheckMethod<unknown, Json>(), request({}), 5_000);
    expect(denied).toEqual({
      status: { code: 7 },
      denied_response: { status: { code: 'Unauthorized' }, body: 'no' },
    });
  });

  it('fails a call the server does not answer in time with DEADLINE_EXCEEDED', async () => {
    const c = channel({ port });
    const err = await c
      .call(authorizationCheckMethod(), request({ 'x-hang': '1' }), 300)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(GrpcCallError);
    expect((err as GrpcCallError).codeName).toBe('DEADLINE_EXCEEDED');
  });

  it('fails a call to a port nobody listens on with UNAVAILABLE', async () => {
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const deadPort = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const err = await channel({ port: deadPort })
      .call(authorizationCheckMethod(), request({}), 5_000)
      .catch((e: unknown) => e);
    expect((err as GrpcCallError).codeName).toBe('UNAVAILABLE');
  });
});
