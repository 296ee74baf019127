import { decodeMessage, encodeMessage } from '@mizzen/xds';
import { describe, expect, it } from 'vitest';
import { authorize } from '../src/authz/authorize.js';
import { compileExtAuthz } from '../src/authz/ext-authz.js';
import { sanitizeUtf8 } from '../src/authz/ext-authz-body.js';
import type { MeshConfig } from '../src/authz/ext-authz-config.js';
import type { ExtAuthzJson } from '../src/envoy/types.js';
import {
  buildAuthorizationFilters,
  checkBody,
  compileExtAuthzPerRoute,
  EXT_AUTHZ_HTTP_TYPE,
  type ExtAuthzCheckInput,
  requestBodySettings,
} from '../src/index.js';
import { ap, http, WORKLOAD } from './helpers.js';

/**
 * includeRequestBodyInCheck / with_request_body: what pilot writes, what
 * the proxy accepts, and the body as the HTTP and gRPC checks carry it.
 */

type Body = { maxRequestBytes?: number; allowPartialMessage?: boolean; packAsBytes?: boolean };

function filterFor(provider: 'envoyExtAuthzHttp' | 'envoyExtAuthzGrpc', body: Body, extra = {}) {
  const meshConfig: MeshConfig = {
    extensionProviders: [
      {
        name: 'ext',
        [provider]: { service: 'foo/authz', port: 8000, includeRequestBodyInCheck: body, ...extra },
      },
    ],
  };
  const built = buildAuthorizationFilters(
    [ap('c', { action: 'CUSTOM', provider: { name: 'ext' }, rules: [{}] })],
    WORKLOAD,
    { meshConfig },
  );
  const ext = built.http.find((x) => x.typed_config['@type'] === EXT_AUTHZ_HTTP_TYPE);
  const { '@type': _type, ...config } = ext?.typed_config ?? {};
  return { built, config: ext ? (config as unknown as ExtAuthzJson) : undefined };
}

const GRPC: ExtAuthzJson = {
  grpc_service: { envoy_grpc: { cluster_name: 'outbound|9000||authz.foo.svc.cluster.local' } },
  transport_api_version: 'V3',
};

const input = (body?: { data: Uint8Array; partial: boolean }): ExtAuthzCheckInput => ({
  source: { address: '10.0.0.1', port: 40000 },
  destination: { address: '10.0.0.2', port: 8000 },
  http: {
    id: '1',
    time: new Date('2025-03-04T05:06:07.089Z'),
    method: 'POST',
    path: '/api',
    host: 'httpbin.foo:8000',
    scheme: 'http',
    protocol: 'HTTP/1.1',
    // A client cannot forge Envoy's marker.
    headers: { 'content-type': 'application/json', 'x-envoy-auth-partial-body': 'forged' },
    size: body?.data.length ?? 0,
    ...(body ? { body } : {}),
  },
  metadata: {},
});

describe('includeRequestBodyInCheck, translated', () => {
  it('becomes with_request_body on HTTP and gRPC providers alike', () => {
    const body = { maxRequestBytes: 64, allowPartialMessage: true, packAsBytes: true };
    for (const provider of ['envoyExtAuthzHttp', 'envoyExtAuthzGrpc'] as const) {
      const { built, config } = filterFor(provider, body);
      expect(built.issues.filter((i) => i.severity === 'error')).toEqual([]);
      expect(config?.with_request_body).toEqual({
        max_request_bytes: 64,
        allow_partial_message: true,
        pack_as_bytes: true,
      });
    }
    expect(filterFor('envoyExtAuthzGrpc', { maxRequestBytes: 8 }).config?.with_request_body).toEqual({
      max_request_bytes: 8,
    });
  });

  it('refuses a provider without a usable maxRequestBytes (Envoy requires > 0), denying what it would check', () => {
    for (const body of [{}, { maxRequestBytes: 0 }, { maxRequestBytes: 1.5 }]) {
      const d = authorize(
        [ap('c', { action: 'CUSTOM', provider: { name: 'ext' }, rules: [{}] })],
        WORKLOAD,
        http(),
        {
          meshConfig: {
            extensionProviders: [
              {
                name: 'ext',
                envoyExtAuthzGrpc: { service: 'foo/a', port: 1, includeRequestBodyInCheck: body },
              },
            ],
          },
          rejectInvalid: false,
        },
      );
      expect(d.verdict).toBe('deny');
      expect(d.issues[0]!.message).toContain(
        'includeRequestBodyInCheck.maxRequestBytes must be a whole number of bytes greater than 0',
      );
    }
  });
});

describe('with_request_body, compiled by the proxy', () => {
  it('is honoured as given, and refused where Envoy refuses it', () => {
    const a = compileExtAuthz(
      { ...GRPC, with_request_body: { max_request_bytes: 10, pack_as_bytes: true } },
      'f',
    );
    expect(a.withRequestBody).toEqual({ maxRequestBytes: 10, allowPartialMessage: false, packAsBytes: true });
    expect(compileExtAuthz(GRPC, 'f').withRequestBody).toBeUndefined();
    expect(() => compileExtAuthz({ ...GRPC, with_request_body: { max_request_bytes: 0 } }, 'f')).toThrow(
      'f.with_request_body.max_request_bytes: must be a whole number of bytes greater than 0, found 0',
    );
  });

  it('is off on a route whose check_settings disable body buffering', () => {
    const a = compileExtAuthz({ ...GRPC, with_request_body: { max_request_bytes: 10 } }, 'f');
    const off = compileExtAuthzPerRoute({ check_settings: { disable_request_body_buffering: true } }, 'r');
    const on = compileExtAuthzPerRoute({ check_settings: { context_extensions: { a: '1' } } }, 'r');
    expect(requestBodySettings(a, off)).toBeUndefined();
    expect(requestBodySettings(a, on)).toEqual(a.withRequestBody);
    expect(requestBodySettings(a, undefined)).toEqual(a.withRequestBody);
  });
});

describe('the body in the check', () => {
  const settings = { maxRequestBytes: 4, allowPartialMessage: true, packAsBytes: false };

  it('carries at most maxRequestBytes, partial only when more was buffered', () => {
    expect(checkBody(settings, Buffer.from('abcdef'))).toEqual({ data: Buffer.from('abcd'), partial: true });
    expect(checkBody(settings, Buffer.from('abcd'))).toEqual({ data: Buffer.from('abcd'), partial: false });
    expect(checkBody(settings, Buffer.from('ab'))).toEqual({ data: Buffer.from('ab'), partial: false });
  });

  it('replaces each byte outside well-formed UTF-8 with "!", as Envoy sanitizes the body string', () => {
    expect(sanitizeUtf8(Buffer.from('héllo ✓ 😀'))).toBe('héllo ✓ 😀');
    expect(
      sanitizeUtf8(
        Buffer.from([0x61, 0xc3, 0xc7, 0x62, 0xed, 0xa0, 0x80, 0xf4, 0x90, 0x80, 0x80, 0xe2, 0x82]),
      ),
    ).toBe('a!!b!!!!!!!!!');
  });

  it('gRPC: the body as the UTF-8 `body`, or as `raw_body` bytes with pack_as_bytes, and the partial marker', () => {
    const text = compileExtAuthz({ ...GRPC, with_request_body: { max_request_bytes: 4 } }, 'f');
    const bytes = Buffer.from([0xff, 0x00, 0x41, 0x80]);
    const sent = text.grpcCheckRequest(input({ data: bytes, partial: true }));
    expect(sent.attributes?.request?.http).toMatchObject({ body: '!\u0000A!', size: 4 });
    expect(sent.attributes?.request?.http?.raw_body).toBeUndefined();
    expect(sent.attributes?.request?.http?.headers?.['x-envoy-auth-partial-body']).toBe('true');

    const packed = compileExtAuthz(
      { ...GRPC, with_request_body: { max_request_bytes: 4, pack_as_bytes: true } },
      'f',
    );
    const raw = packed.grpcCheckRequest(input({ data: bytes, partial: false }));
    expect(raw.attributes?.request?.http?.body).toBeUndefined();
    expect(raw.attributes?.request?.http?.headers?.['x-envoy-auth-partial-body']).toBe('false');
    // On the wire it is the bytes themselves, as an authorizer decodes them.
    const decoded = decodeMessage(
      'envoy.service.auth.v3.CheckRequest',
      encodeMessage('envoy.service.auth.v3.CheckRequest', raw),
    ) as typeof raw;
    expect(Buffer.from(decoded.attributes!.request!.http!.raw_body!, 'base64')).toEqual(bytes);

    // No body buffered (a GET): no body fields and no marker; the client's own never passes.
    const none = text.grpcCheckRequest(input()).attributes!.request!.http!;
    expect(none.body).toBeUndefined();
    expect(none.headers?.['x-envoy-auth-partial-body']).toBeUndefined();
  });

  it('HTTP: the body as the check request body with its content-length; the marker only if allowed', () => {
    const { config } = filterFor(
      'envoyExtAuthzHttp',
      { maxRequestBytes: 4 },
      { includeRequestHeadersInCheck: ['x-envoy-auth-partial-body'] },
    );
    const a = compileExtAuthz(config!, 'f');
    const req = http({ method: 'POST', headers: { 'x-envoy-auth-partial-body': 'forged' } }).http!;
    const check = a.checkRequest(req, { data: Buffer.from([0x7b, 0xff, 0x7d]), partial: true });
    expect(check.body).toEqual(Buffer.from('{!}'));
    expect(check.headers).toMatchObject({ 'content-length': '3', 'x-envoy-auth-partial-body': 'true' });
    expect(a.checkRequest(req).headers).toMatchObject({ 'content-length': '0' });
    expect(a.checkRequest(req).headers['x-envoy-auth-partial-body']).toBeUndefined();
    expect(a.checkRequest(req).body).toBeUndefined();

    const packed = compileExtAuthz(
      { ...config!, with_request_body: { max_request_bytes: 4, pack_as_bytes: true } },
      'f',
    );
    expect(packed.checkRequest(req, { data: Buffer.from([0x7b, 0xff]), partial: false }).body).toEqual(
      Buffer.from([0x7b, 0xff]),
    );
    // Without the header in includeRequestHeadersInCheck, the HTTP authorizer does not get the marker.
    const plain = compileExtAuthz(filterFor('envoyExtAuthzHttp', { maxRequestBytes: 4 }).config!, 'f');
    expect(
      plain.checkRequest(req, { data: Buffer.from('ab'), partial: true }).headers[
        'x-envoy-auth-partial-body'
      ],
    ).toBeUndefined();
  });
});
