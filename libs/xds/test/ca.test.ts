import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { afterEach, describe, expect, it } from 'vitest';
import { CaClient, CaClientError } from '../src/ca-client.js';
import {
  CREATE_CERTIFICATE_METHOD,
  decodeCertificateRequest,
  decodeCertificateResponse,
  encodeCertificateRequest,
  encodeCertificateResponse,
  ISTIO_CA_PROTO,
  type IstioCertificateRequest,
  type IstioCertificateServiceHandlers,
  istioCertificateService,
} from '../src/ca-service.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const cleanups: (() => void)[] = [];
afterEach(() => {
  while (cleanups.length) cleanups.pop()!();
});

interface Seen {
  request: IstioCertificateRequest;
  metadata: grpc.Metadata;
}

async function serve(handler: IstioCertificateServiceHandlers['CreateCertificate']): Promise<number> {
  const server = new grpc.Server();
  server.addService(istioCertificateService, { CreateCertificate: handler });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  cleanups.push(() => server.forceShutdown());
  return port;
}

function client(port: number, deadlineMs?: number): CaClient {
  const c = new CaClient({ address: `127.0.0.1:${port}`, ...(deadlineMs ? { deadlineMs } : {}) });
  cleanups.push(() => c.close());
  return c;
}

async function failure(p: Promise<unknown>): Promise<CaClientError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CaClientError);
  return err as CaClientError;
}

describe('Istio certificate service wire format', () => {
  it('ships ca.proto with the package, found relative to the package root from src and dist', async () => {
    expect(ISTIO_CA_PROTO).toBe(path.resolve(here, '..', 'protos', 'istio', 'v1', 'auth', 'ca.proto'));
    const text = fs.readFileSync(ISTIO_CA_PROTO, 'utf8');
    expect(text).toMatch(/package istio\.v1\.auth;/);
    expect(text).toMatch(
      /rpc CreateCertificate\(IstioCertificateRequest\) returns \(IstioCertificateResponse\)/,
    );
    const dist = path.resolve(here, '..', 'dist', 'ca-service.js');
    if (fs.existsSync(dist)) {
      const built = (await import(dist)) as { ISTIO_CA_PROTO: string };
      expect(built.ISTIO_CA_PROTO).toBe(ISTIO_CA_PROTO);
    }
  });

  it('uses Istio’s method path and field numbers (csr = 1, validity_duration = 3, metadata = 4, cert_chain = 1)', () => {
    expect(CREATE_CERTIFICATE_METHOD).toBe('/istio.v1.auth.IstioCertificateService/CreateCertificate');
    expect([...encodeCertificateRequest({ csr: 'x', validity_duration: 5 })]).toEqual([
      0x0a, 0x01, 0x78, 0x18, 0x05,
    ]);
    const withMeta = encodeCertificateRequest({ csr: '', validity_duration: 0, metadata: { a: 'b' } });
    expect(withMeta[0]).toBe(0x22);
    expect([...encodeCertificateResponse({ cert_chain: ['a', 'b'] })]).toEqual([
      0x0a, 0x01, 0x61, 0x0a, 0x01, 0x62,
    ]);
    expect(decodeCertificateResponse(Buffer.from([0x0a, 0x01, 0x61]))).toEqual({ cert_chain: ['a'] });
  });

  it.each([
    [{ csr: 'pem', validity_duration: 86_400, metadata: {} }],
    [{ csr: '', validity_duration: 0, metadata: {} }],
    [{ csr: 'big', validity_duration: 2 ** 40, metadata: {} }],
    [
      {
        csr: 'meta',
        validity_duration: 1,
        metadata: {
          ClusterID: 'Kubernetes',
          n: 1.5,
          ok: true,
          none: null,
          nested: { list: [1, 'two', false, { x: [] }] },
        },
      },
    ],
  ])('round-trips a request through encode/decode: %j', (req) => {
    expect(decodeCertificateRequest(encodeCertificateRequest(req))).toEqual(req);
  });
});

describe('CaClient against a real gRPC server', () => {
  it('sends the CSR, TTL, node metadata, bearer token and ClusterID; returns the chain', async () => {
    const seen: Seen[] = [];
    const port = await serve((call, callback) => {
      seen.push({ request: call.request, metadata: call.metadata });
      callback(null, { cert_chain: ['leaf', 'intermediate', 'root'] });
    });
    const chain = await client(port).createCertificate({
      csrPem: '-----BEGIN CERTIFICATE REQUEST-----',
      ttlSeconds: 3600,
      token: 'tok.en.value',
      clusterId: 'Kubernetes',
      metadata: { WorkloadName: 'reviews-v1' },
    });
    expect(chain).toEqual(['leaf', 'intermediate', 'root']);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.request).toEqual({
      csr: '-----BEGIN CERTIFICATE REQUEST-----',
      validity_duration: 3600,
      metadata: { WorkloadName: 'reviews-v1' },
    });
    expect(seen[0]!.metadata.get('authorization')).toEqual(['Bearer tok.en.value']);
    expect(seen[0]!.metadata.get('clusterid')).toEqual(['Kubernetes']);
  });

  it('leaves the TTL to the CA when none is asked for, and sends no ClusterID when none is given', async () => {
    const seen: Seen[] = [];
    const port = await serve((call, callback) => {
      seen.push({ request: call.request, metadata: call.metadata });
      callback(null, { cert_chain: ['leaf'] });
    });
    await client(port).createCertificate({ csrPem: 'csr', token: 't' });
    expect(seen[0]!.request.validity_duration).toBe(0);
    expect(seen[0]!.metadata.get('clusterid')).toEqual([]);
  });

  it.each([
    [grpc.status.UNAUTHENTICATED, 'the token has expired'],
    [grpc.status.INVALID_ARGUMENT, 'the CSR is 70000 bytes; the limit is 65536'],
    [grpc.status.PERMISSION_DENIED, 'not a service account'],
  ])('surfaces status %s with the CA’s message', async (code, details) => {
    const port = await serve((_call, callback) => callback({ code, details }));
    const err = await failure(client(port).createCertificate({ csrPem: 'csr', token: 't' }));
    expect(err.code).toBe(code);
    expect(err.details).toBe(details);
    expect(err.codeName).toBe(grpc.status[code]);
    expect(err.message).toBe(`CreateCertificate failed: ${grpc.status[code]}: ${details}`);
  });

  it('refuses an empty chain', async () => {
    const port = await serve((_call, callback) => callback(null, { cert_chain: [] }));
    const err = await failure(client(port).createCertificate({ csrPem: 'csr', token: 't' }));
    expect(err.codeName).toBe('INTERNAL');
    expect(err.details).toMatch(/empty certificate chain/);
  });

  it('gives up at its deadline when the CA does not answer', async () => {
    const pending: (() => void)[] = [];
    const port = await serve((_call, callback) => {
      pending.push(() => callback(null, { cert_chain: ['late'] }));
    });
    cleanups.push(() => {
      for (const answer of pending) answer();
    });
    const err = await failure(client(port, 200).createCertificate({ csrPem: 'csr', token: 't' }));
    expect(err.codeName).toBe('DEADLINE_EXCEEDED');
  });

  it('reports an unreachable CA as UNAVAILABLE', async () => {
    const port = await serve((_call, callback) => callback(null, { cert_chain: ['x'] }));
    cleanups.pop()!();
    const err = await failure(client(port, 2000).createCertificate({ csrPem: 'csr', token: 't' }));
    expect(['UNAVAILABLE', 'DEADLINE_EXCEEDED']).toContain(err.codeName);
  });

  it('refuses a negative or fractional TTL before sending anything', async () => {
    const c = new CaClient({ address: '127.0.0.1:1' });
    cleanups.push(() => c.close());
    await expect(c.createCertificate({ csrPem: 'csr', token: 't', ttlSeconds: -1 })).rejects.toThrow(
      /non-negative integer/,
    );
    await expect(c.createCertificate({ csrPem: 'csr', token: 't', ttlSeconds: 1.5 })).rejects.toThrow(
      /non-negative integer/,
    );
  });
});
