import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import {
  CA_AUDIENCE,
  generateTokenSecret,
  LOCAL_TOKEN_ISSUER,
  mintWorkloadToken,
  TokenError,
  type TokenErrorReason,
  verifyWorkloadToken,
} from '../src/index.js';

const secret = generateTokenSecret();
const key = new TextEncoder().encode(secret);

function b64(json: object): string {
  return Buffer.from(JSON.stringify(json)).toString('base64url');
}

async function signed(
  claims: Record<string, unknown>,
  header: Record<string, unknown> = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    iss: LOCAL_TOKEN_ISSUER,
    aud: CA_AUDIENCE,
    sub: 'system:serviceaccount:default:a',
    exp: now + 60,
    ...claims,
  })
    .setProtectedHeader({ alg: 'HS256', ...header })
    .sign(key);
}

describe('workload bootstrap tokens', () => {
  it('mint → verify proves the service account, in the Kubernetes subject form', async () => {
    const token = await mintWorkloadToken(secret, {
      namespace: 'default',
      serviceAccount: 'bookinfo-ratings',
      ttlSeconds: 600,
    });
    const verified = await verifyWorkloadToken(secret, token);
    expect(verified).toMatchObject({ namespace: 'default', serviceAccount: 'bookinfo-ratings' });
    expect(verified.expiresAt.getTime()).toBeGreaterThan(Date.now() + 590_000);
    const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
    expect(payload).toMatchObject({
      iss: 'mizzen-local',
      aud: 'istio-ca',
      sub: 'system:serviceaccount:default:bookinfo-ratings',
      'kubernetes.io': { namespace: 'default', serviceaccount: { name: 'bookinfo-ratings' } },
    });
    expect(payload.exp - payload.iat).toBe(600);
    expect(JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString())).toEqual({
      alg: 'HS256',
      typ: 'JWT',
    });
  });

  it('accepts the secret as bytes or as text with surrounding whitespace (a file read as is)', async () => {
    const token = await mintWorkloadToken(key, { namespace: 'a', serviceAccount: 'b', ttlSeconds: 60 });
    expect((await verifyWorkloadToken(`${secret}\n`, token)).serviceAccount).toBe('b');
  });

  const now = Date.now();
  const refusals: [string, () => Promise<string>, TokenErrorReason, RegExp, string?][] = [
    [
      'an expired token',
      () =>
        mintWorkloadToken(secret, {
          namespace: 'a',
          serviceAccount: 'b',
          ttlSeconds: 60,
          now: new Date(now - 3600_000),
        }),
      'expired',
      /the token has expired/,
    ],
    [
      'a token from the future',
      () =>
        mintWorkloadToken(secret, {
          namespace: 'a',
          serviceAccount: 'b',
          ttlSeconds: 60,
          now: new Date(now + 600_000),
        }),
      'not-yet-valid',
      /not valid yet/,
    ],
    [
      'a token for another audience',
      () =>
        mintWorkloadToken(secret, {
          namespace: 'a',
          serviceAccount: 'b',
          ttlSeconds: 60,
          audience: 'kubernetes',
        }),
      'wrong-audience',
      /audience is not istio-ca/,
    ],
    [
      'a token from another issuer',
      () => signed({ iss: 'https://kubernetes.default.svc' }),
      'wrong-issuer',
      /not issued by mizzen-local/,
    ],
    [
      'a token signed with another secret',
      () => mintWorkloadToken(generateTokenSecret(), { namespace: 'a', serviceAccount: 'b', ttlSeconds: 60 }),
      'bad-signature',
      /signature does not verify/,
    ],
    [
      'a token whose subject is a user',
      () => signed({ sub: 'admin' }),
      'invalid-subject',
      /subject "admin" is not a service account/,
    ],
    ['a token without exp', () => signed({ exp: undefined }), 'malformed', /exp claim is missing/],
    [
      'an unsigned token (alg none)',
      async () =>
        `${b64({ alg: 'none' })}.${b64({ iss: LOCAL_TOKEN_ISSUER, aud: CA_AUDIENCE, sub: 'system:serviceaccount:a:b', exp: 9e9 })}.`,
      'bad-signature',
      /not signed with HS256/,
    ],
    [
      'a token signed with HS512',
      () => signed({}, { alg: 'HS512' }),
      'bad-signature',
      /not signed with HS256/,
    ],
    ['random text', async () => 'not-a-jwt', 'malformed', /not a valid JWT/],
    ['an empty token', async () => '', 'malformed', /not a valid JWT/],
    ['an oversized token', async () => 'a'.repeat(9000), 'malformed', /not a valid JWT/],
  ];

  it.each(refusals)('refuses %s', async (_name, make, reason, message) => {
    const token = await make();
    const err = await verifyWorkloadToken(secret, token).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(TokenError);
    expect((err as TokenError).reason).toBe(reason);
    expect((err as Error).message).toMatch(message);
  });

  it.each([
    [
      'a short secret',
      () => mintWorkloadToken('short', { namespace: 'a', serviceAccount: 'b', ttlSeconds: 60 }),
      /at least 32 bytes/,
    ],
    [
      'a bad namespace',
      () => mintWorkloadToken(secret, { namespace: 'A', serviceAccount: 'b', ttlSeconds: 60 }),
      /namespace "A"/,
    ],
    [
      'a zero TTL',
      () => mintWorkloadToken(secret, { namespace: 'a', serviceAccount: 'b', ttlSeconds: 0 }),
      /positive integer/,
    ],
    ['a short secret on verify', () => verifyWorkloadToken('short', 'x.y.z'), /at least 32 bytes/],
  ])('refuses to work with %s', async (_name, run, message) => {
    await expect(run()).rejects.toThrow(message);
  });
});
