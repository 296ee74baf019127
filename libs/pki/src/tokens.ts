import { errors, jwtVerify, SignJWT } from 'jose';
import { parseServiceAccountUsername, serviceAccountUsername } from './spiffe.js';

/**
 * Bootstrap tokens for local mode: what a Kubernetes service-account token
 * is to istiod, minted by `mizzen up` per workload and checked by citadel.
 * HS256 JWTs with Kubernetes' subject form and Istio's CA audience.
 */
export const LOCAL_TOKEN_ISSUER = 'mizzen-local';
export const CA_AUDIENCE = 'istio-ca';

const MIN_SECRET_BYTES = 32;
const MAX_TOKEN_BYTES = 8 * 1024;

export type TokenErrorReason =
  | 'expired'
  | 'not-yet-valid'
  | 'bad-signature'
  | 'wrong-issuer'
  | 'wrong-audience'
  | 'invalid-subject'
  | 'malformed'
  | 'invalid-secret';

export class TokenError extends Error {
  override readonly name = 'TokenError';

  constructor(
    readonly reason: TokenErrorReason,
    message: string,
  ) {
    super(message);
  }
}

export interface WorkloadTokenClaims {
  namespace: string;
  serviceAccount: string;
}

export interface MintWorkloadTokenOptions extends WorkloadTokenClaims {
  ttlSeconds: number;
  /** Issue time; now by default. */
  now?: Date;
  /** Default `istio-ca`. */
  audience?: string;
}

export interface VerifiedWorkloadToken extends WorkloadTokenClaims {
  expiresAt: Date;
}

export interface VerifyWorkloadTokenOptions {
  now?: Date;
  /** Accepted clock difference in seconds for exp/nbf/iat; default 5. */
  clockToleranceSeconds?: number;
}

function keyBytes(secret: string | Uint8Array): Uint8Array {
  const bytes = typeof secret === 'string' ? new TextEncoder().encode(secret.trim()) : secret;
  if (bytes.byteLength < MIN_SECRET_BYTES) {
    throw new TokenError('invalid-secret', `the token secret must be at least ${MIN_SECRET_BYTES} bytes`);
  }
  return bytes;
}

/** A fresh secret for `--token-key` files: 32 random bytes, base64url. */
export function generateTokenSecret(): string {
  return Buffer.from(globalThis.crypto.getRandomValues(new Uint8Array(32))).toString('base64url');
}

/** Mints a token proving `system:serviceaccount:<namespace>:<serviceAccount>` to the CA. */
export async function mintWorkloadToken(
  secret: string | Uint8Array,
  options: MintWorkloadTokenOptions,
): Promise<string> {
  const key = keyBytes(secret);
  if (!Number.isInteger(options.ttlSeconds) || options.ttlSeconds <= 0) {
    throw new TokenError('malformed', `ttlSeconds must be a positive integer, got ${options.ttlSeconds}`);
  }
  let subject: string;
  try {
    subject = serviceAccountUsername(options.namespace, options.serviceAccount);
  } catch (err) {
    throw new TokenError('invalid-subject', (err as Error).message);
  }
  const iat = Math.floor((options.now ?? new Date()).getTime() / 1000);
  return new SignJWT({
    'kubernetes.io': { namespace: options.namespace, serviceaccount: { name: options.serviceAccount } },
  })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setIssuer(LOCAL_TOKEN_ISSUER)
    .setAudience(options.audience ?? CA_AUDIENCE)
    .setSubject(subject)
    .setIssuedAt(iat)
    .setNotBefore(iat)
    .setExpirationTime(iat + options.ttlSeconds)
    .sign(key);
}

function explain(err: unknown): TokenError {
  if (err instanceof errors.JWTExpired) return new TokenError('expired', 'the token has expired');
  if (err instanceof errors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'iss':
        return new TokenError('wrong-issuer', `the token was not issued by ${LOCAL_TOKEN_ISSUER}`);
      case 'aud':
        return new TokenError('wrong-audience', `the token's audience is not ${CA_AUDIENCE}`);
      case 'nbf':
      case 'iat':
        return new TokenError('not-yet-valid', 'the token is not valid yet');
      default:
        return new TokenError(
          'malformed',
          `the token's ${err.claim} claim is ${err.reason === 'missing' ? 'missing' : 'invalid'}`,
        );
    }
  }
  if (err instanceof errors.JWSSignatureVerificationFailed) {
    return new TokenError('bad-signature', 'the token signature does not verify');
  }
  if (err instanceof errors.JOSEAlgNotAllowed) {
    return new TokenError('bad-signature', 'the token is not signed with HS256');
  }
  return new TokenError('malformed', 'the token is not a valid JWT');
}

/** Checks signature, issuer, audience, expiry and subject; returns the proven service account. */
export async function verifyWorkloadToken(
  secret: string | Uint8Array,
  token: string,
  options: VerifyWorkloadTokenOptions = {},
): Promise<VerifiedWorkloadToken> {
  const key = keyBytes(secret);
  if (typeof token !== 'string' || token === '' || token.length > MAX_TOKEN_BYTES) {
    throw new TokenError('malformed', 'the token is not a valid JWT');
  }
  let payload: Awaited<ReturnType<typeof jwtVerify>>['payload'];
  try {
    ({ payload } = await jwtVerify(token, key, {
      algorithms: ['HS256'],
      issuer: LOCAL_TOKEN_ISSUER,
      audience: CA_AUDIENCE,
      requiredClaims: ['exp', 'sub'],
      clockTolerance: options.clockToleranceSeconds ?? 5,
      ...(options.now ? { currentDate: options.now } : {}),
    }));
  } catch (err) {
    throw explain(err);
  }
  let claims: WorkloadTokenClaims;
  try {
    claims = parseServiceAccountUsername(payload.sub ?? '');
  } catch {
    const sub = String(payload.sub ?? '').slice(0, 200);
    throw new TokenError(
      'invalid-subject',
      `the token subject ${JSON.stringify(sub)} is not a service account (system:serviceaccount:<namespace>:<name>)`,
    );
  }
  return { ...claims, expiresAt: new Date((payload.exp ?? 0) * 1000) };
}
