import type { JwtStatus } from './jwt-status.js';

/** The signature algorithms Envoy's jwt_authn verifies. */
export const SUPPORTED_ALGS = new Set([
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'HS256',
  'HS384',
  'HS512',
  'EdDSA',
]);

export interface ParsedJwt {
  token: string;
  alg: string;
  kid?: string;
  iss: string;
  sub: string;
  audiences: string[];
  /** Seconds since the epoch; 0 when absent (as jwt_verify_lib). */
  exp: number;
  nbf: number;
  iat: number;
  header: Record<string, unknown>;
  payload: Record<string, unknown>;
  /** The payload segment exactly as in the token (base64url, no padding). */
  payloadBase64Url: string;
}

const B64URL = /^[A-Za-z0-9_-]*={0,2}$/;

function decodeSegment(s: string): Buffer | undefined {
  if (!B64URL.test(s)) return undefined;
  const body = s.replace(/=+$/, '');
  if (body.length % 4 === 1) return undefined;
  return Buffer.from(body, 'base64url');
}

function jsonObject(buf: Buffer): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(buf.toString('utf8')) as unknown;
    return v !== null && typeof v === 'object' && !Array.isArray(v)
      ? (v as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

type TimeClaim = 'exp' | 'nbf' | 'iat';

function timeClaim(payload: Record<string, unknown>, name: TimeClaim): number | JwtStatus {
  const v = payload[name];
  if (v === undefined) return 0;
  const cap = name === 'exp' ? 'Exp' : name === 'nbf' ? 'Nbf' : 'Iat';
  if (typeof v !== 'number' || !Number.isInteger(v))
    return `JwtPayloadParseError${cap}NotInteger` as JwtStatus;
  if (v < 0) return `JwtPayloadParseError${cap}OutOfRange` as JwtStatus;
  return v;
}

/** jwt_verify_lib's Jwt::parseFromString: structure and claim types, no signature or time checks. */
export function parseJwt(token: string): ParsedJwt | JwtStatus {
  const parts = token.split('.');
  if (parts.length !== 3) return 'JwtBadFormat';
  const [h, p, s] = parts as [string, string, string];
  const headerBuf = decodeSegment(h);
  if (!headerBuf || h === '') return 'JwtHeaderParseErrorBadBase64';
  const header = jsonObject(headerBuf);
  if (!header) return 'JwtHeaderParseErrorBadJson';
  if (typeof header.alg !== 'string') return 'JwtHeaderBadAlg';
  if (!SUPPORTED_ALGS.has(header.alg)) return 'JwtHeaderNotImplementedAlg';
  if (header.kid !== undefined && typeof header.kid !== 'string') return 'JwtHeaderBadKid';

  const payloadBuf = decodeSegment(p);
  if (!payloadBuf || p === '') return 'JwtPayloadParseErrorBadBase64';
  const payload = jsonObject(payloadBuf);
  if (!payload) return 'JwtPayloadParseErrorBadJson';
  if (payload.iss !== undefined && typeof payload.iss !== 'string') return 'JwtPayloadParseErrorIssNotString';
  if (payload.sub !== undefined && typeof payload.sub !== 'string') return 'JwtPayloadParseErrorSubNotString';
  const exp = timeClaim(payload, 'exp');
  if (typeof exp === 'string') return exp;
  const nbf = timeClaim(payload, 'nbf');
  if (typeof nbf === 'string') return nbf;
  const iat = timeClaim(payload, 'iat');
  if (typeof iat === 'string') return iat;
  if (payload.jti !== undefined && typeof payload.jti !== 'string') return 'JwtPayloadParseErrorJtiNotString';
  let audiences: string[] = [];
  if (typeof payload.aud === 'string') audiences = [payload.aud];
  else if (Array.isArray(payload.aud)) {
    if (!payload.aud.every((a) => typeof a === 'string')) return 'JwtPayloadParseErrorAudNotString';
    audiences = payload.aud as string[];
  } else if (payload.aud !== undefined) return 'JwtPayloadParseErrorAudNotString';

  if (!decodeSegment(s)) return 'JwtSignatureParseErrorBadBase64';
  return {
    token,
    alg: header.alg,
    ...(typeof header.kid === 'string' ? { kid: header.kid } : {}),
    iss: (payload.iss as string | undefined) ?? '',
    sub: (payload.sub as string | undefined) ?? '',
    audiences,
    exp,
    nbf,
    iat,
    header,
    payload,
    payloadBase64Url: p,
  };
}

/** jwt_verify_lib's verifyTimeConstraint, in seconds. */
export function checkTime(jwt: ParsedJwt, nowSeconds: number, clockSkewSeconds: number): JwtStatus {
  if (nowSeconds + clockSkewSeconds < jwt.nbf) return 'JwtNotYetValid';
  if (jwt.exp && nowSeconds > jwt.exp + clockSkewSeconds) return 'JwtExpired';
  return 'Ok';
}

/** jwt_verify_lib's CheckAudience: `http(s)://` and then a trailing `/` are ignored on both sides. */
export function sanitizeAudience(aud: string): string {
  for (const scheme of ['https://', 'http://']) {
    if (aud.startsWith(scheme)) {
      const rest = aud.slice(scheme.length);
      return rest.endsWith('/') ? rest.slice(0, -1) : rest;
    }
  }
  return aud;
}

export function audiencesAllowed(configured: readonly string[], jwtAudiences: readonly string[]): boolean {
  if (configured.length === 0) return true;
  const allowed = new Set(configured.map(sanitizeAudience));
  return jwtAudiences.some((a) => allowed.has(sanitizeAudience(a)));
}
