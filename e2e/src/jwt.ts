import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, type JWK, SignJWT } from 'jose';

/** A signing key of an identity provider, with its public JWK. */
export interface Signer {
  kid: string;
  privateKey: Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];
  jwk: JWK;
}

export async function signer(kid: string): Promise<Signer> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' } };
}

export type TokenOptions = { issuer?: string; audience?: string; expiresIn?: number };

/**
 * Mints ES256 tokens for subject `alice` from `issuer` (audience `bookinfo`
 * unless given; `expiresIn` seconds, negative for an expired token).
 */
export function tokenMinter(issuer: string) {
  return (s: Signer, claims: Record<string, unknown>, opts: TokenOptions = {}): Promise<string> => {
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'ES256', kid: s.kid })
      .setIssuer(opts.issuer ?? issuer)
      .setAudience(opts.audience ?? 'bookinfo')
      .setSubject('alice')
      .setIssuedAt(now - 60)
      .setExpirationTime(now + (opts.expiresIn ?? 600))
      .sign(s.privateKey);
  };
}

/** A JWKS endpoint (a real HTTP server) whose keys a test may rotate. */
export async function jwksServer(initial: JWK[]) {
  const state = { keys: initial, fetches: 0 };
  const server = http.createServer((_req, res) => {
    state.fetches++;
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: state.keys }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    state,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
