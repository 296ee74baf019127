import { webcrypto } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { createCsr, generateKeyPair, generateTokenSecret, mintWorkloadToken } from '@mizzen/pki';
import { CaClientError } from '@mizzen/xds';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, type Harness, metricValue, startCitadel } from './helpers.js';

afterEach(cleanup);

async function refused(p: Promise<unknown>): Promise<CaClientError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CaClientError);
  return err as CaClientError;
}

let goodCsr: string;
beforeAll(async () => {
  goodCsr = await createCsr({
    keys: await generateKeyPair(),
    uris: ['spiffe://cluster.local/ns/default/sa/a'],
  });
});

async function successes(h: Harness): Promise<number> {
  return metricValue(await (await h.http('/metrics')).text(), 'citadel_server_success_cert_issuance_count');
}

describe('citadel refuses bad credentials', () => {
  const cases: [string, (h: Harness) => Promise<{ token: string; raw?: string }>, string, RegExp][] = [
    [
      'a garbage token',
      async () => ({ token: 'garbage' }),
      'UNAUTHENTICATED',
      /token rejected: the token is not a valid JWT/,
    ],
    [
      'an expired token',
      async (h) => ({
        token: await h.token('default', 'a', { ttlSeconds: 60, now: new Date(Date.now() - 3600_000) }),
      }),
      'UNAUTHENTICATED',
      /token rejected: the token has expired/,
    ],
    [
      'a token for another audience',
      async (h) => ({ token: await h.token('default', 'a', { audience: 'kubernetes' }) }),
      'UNAUTHENTICATED',
      /token rejected: the token's audience is not istio-ca/,
    ],
    [
      'a token signed with another key',
      async () => ({
        token: await mintWorkloadToken(generateTokenSecret(), {
          namespace: 'default',
          serviceAccount: 'a',
          ttlSeconds: 60,
        }),
      }),
      'UNAUTHENTICATED',
      /token rejected: the token signature does not verify/,
    ],
    ['no authorization metadata', async () => ({ token: '', raw: '' }), 'UNAUTHENTICATED', /no credentials/],
    [
      'a non-bearer authorization',
      async () => ({ token: '', raw: 'Basic dXNlcjpwdw==' }),
      'UNAUTHENTICATED',
      /is not "Bearer <token>"/,
    ],
  ];

  it.each(cases)('%s → %s', async (_name, make, code, message) => {
    const h = await startCitadel();
    const { token, raw } = await make(h);
    let err: CaClientError;
    if (raw === undefined) {
      err = await refused(h.client.createCertificate({ csrPem: goodCsr, token }));
    } else {
      err = await rawCall(h, goodCsr, raw);
    }
    expect(err.codeName).toBe(code);
    expect(err.details).toMatch(message);
    expect(await successes(h)).toBe(0);
  });

  it('a token proving a user rather than a service account → PERMISSION_DENIED', async () => {
    const h = await startCitadel();
    const { SignJWT } = await import('jose');
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer('mizzen-local')
      .setAudience('istio-ca')
      .setSubject('admin')
      .setExpirationTime(now + 60)
      .sign(new TextEncoder().encode(h.secret));
    const err = await refused(h.client.createCertificate({ csrPem: goodCsr, token }));
    expect(err.codeName).toBe('PERMISSION_DENIED');
    expect(err.details).toMatch(/subject "admin" is not a service account/);
  });
});

/** CreateCertificate with hand-made authorization metadata (or none), through the real client library. */
async function rawCall(h: Harness, csr: string, authorization: string): Promise<CaClientError> {
  const { createCertificateMethod: m } = await import('@mizzen/xds');
  const client = new grpc.Client(
    `127.0.0.1:${h.ports.grpc}`,
    grpc.credentials.createSsl(Buffer.from(h.roots)),
  );
  const md = new grpc.Metadata();
  if (authorization) md.set('authorization', authorization);
  try {
    return await new Promise<CaClientError>((resolve, reject) =>
      client.makeUnaryRequest(
        m.path,
        m.requestSerialize,
        m.responseDeserialize,
        { csr, validity_duration: 0, metadata: {} },
        md,
        { deadline: Date.now() + 5000 },
        (err) =>
          err ? resolve(new CaClientError(err.code, err.details)) : reject(new Error('call succeeded')),
      ),
    );
  } finally {
    client.close();
  }
}

describe('citadel refuses bad requests', () => {
  const rsa1024 = async () => {
    const pair = (await webcrypto.subtle.generateKey(
      {
        name: 'RSASSA-PKCS1-v1_5',
        modulusLength: 1024,
        publicExponent: new Uint8Array([1, 0, 1]),
        hash: 'SHA-256',
      },
      true,
      ['sign', 'verify'],
    )) as webcrypto.CryptoKeyPair;
    return createCsr({ keys: pair });
  };
  const p521 = async () => {
    const pair = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-521' }, true, [
      'sign',
      'verify',
    ])) as webcrypto.CryptoKeyPair;
    return createCsr({ keys: pair });
  };
  const cases: [string, () => Promise<string>, number, string, RegExp, string][] = [
    [
      'a malformed CSR',
      async () => 'this is not a CSR',
      0,
      'INVALID_ARGUMENT',
      /bad CSR: CSR: no PEM block found/,
      'CSR_ERROR',
    ],
    [
      'a PEM block that is not PKCS#10',
      async () => '-----BEGIN CERTIFICATE REQUEST-----\nMIIB\n-----END CERTIFICATE REQUEST-----\n',
      0,
      'INVALID_ARGUMENT',
      /bad CSR: the CSR is not a valid PKCS#10 request/,
      'CSR_ERROR',
    ],
    ['an empty CSR', async () => '', 0, 'INVALID_ARGUMENT', /bad CSR: the CSR is empty/, 'CSR_ERROR'],
    [
      'an oversized CSR (> 64 KiB)',
      async () => `${goodCsr}${'#'.repeat(70 * 1024)}`,
      0,
      'INVALID_ARGUMENT',
      /bad CSR: the CSR is \d+ bytes; the limit is 65536/,
      'CSR_ERROR',
    ],
    ['an RSA-1024 key', rsa1024, 0, 'INVALID_ARGUMENT', /RSA 1024-bit keys are too weak/, 'CSR_ERROR'],
    [
      'an unsupported key type (P-521)',
      p521,
      0,
      'INVALID_ARGUMENT',
      /ECDSA P-521 keys are not accepted/,
      'CSR_ERROR',
    ],
    [
      'a TTL above the maximum',
      async () => goodCsr,
      91 * 86_400,
      'INVALID_ARGUMENT',
      /requested TTL 91d is greater than the max allowed TTL 90d/,
      'TTL_ERROR',
    ],
  ];

  it.each(cases)('%s → %s, nothing issued', async (_name, make, ttlSeconds, code, message, reason) => {
    const h = await startCitadel();
    const err = await refused(
      h.client.createCertificate({ csrPem: await make(), ttlSeconds, token: await h.token('default', 'a') }),
    );
    expect(err.codeName).toBe(code);
    expect(err.details).toMatch(message);
    expect(err.details.split('\n')).toHaveLength(1);
    const metrics = await (await h.http('/metrics')).text();
    expect(metricValue(metrics, 'citadel_server_success_cert_issuance_count')).toBe(0);
    expect(metricValue(metrics, 'citadel_server_csr_sign_err_count', `reason="${reason}"`)).toBe(1);
    expect(h.logs.find('CreateCertificate refused')).toMatchObject({ code, reason });
  });

  it('a message far over the limit is cut off by gRPC before it is read', async () => {
    const h = await startCitadel();
    const err = await refused(
      h.client.createCertificate({ csrPem: 'x'.repeat(1024 * 1024), token: await h.token('default', 'a') }),
    );
    expect(err.code).toBe(grpc.status.RESOURCE_EXHAUSTED);
  });
});
