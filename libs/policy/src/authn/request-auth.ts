import type { RequestAuth } from '../authz/attributes.js';

/** Istio's request.auth.* from one verified JWT payload. */
export function requestAuthFromPayload(payload: Record<string, unknown>): RequestAuth {
  const iss = typeof payload.iss === 'string' ? payload.iss : '';
  const sub = typeof payload.sub === 'string' ? payload.sub : '';
  const aud = payload.aud;
  const audiences =
    typeof aud === 'string'
      ? [aud]
      : Array.isArray(aud)
        ? aud.filter((a): a is string => typeof a === 'string')
        : [];
  return {
    ...(iss && sub ? { principal: `${iss}/${sub}` } : {}),
    audiences,
    ...(typeof payload.azp === 'string' && payload.azp ? { presenter: payload.azp } : {}),
    claims: payload,
  };
}

/**
 * The request.auth.* Istio's authn filter derives when several JWTs were
 * verified: the payload stored under the lexically first metadata key (the
 * issuer, with Istio's `payload_in_metadata`).
 */
export function requestAuthFromPayloads(
  payloads: Readonly<Record<string, Record<string, unknown>>>,
): RequestAuth | undefined {
  const keys = Object.keys(payloads).sort();
  return keys.length ? requestAuthFromPayload(payloads[keys[0]!]!) : undefined;
}

/**
 * A claim value as Envoy's claim_to_headers writes it: strings as is,
 * integers without a fraction, other numbers with six decimals (C++
 * `std::to_string`), booleans `true`/`false`, objects and lists as base64
 * JSON. Undefined for a missing or null claim.
 */
export function claimHeaderValue(value: unknown): string | undefined {
  if (typeof value === 'string') return value || undefined;
  if (typeof value === 'number') {
    if (value < 0 || value >= 2 ** 64 || !Number.isInteger(value)) return value.toFixed(6);
    return BigInt(value).toString();
  }
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (value !== null && typeof value === 'object')
    return Buffer.from(JSON.stringify(value)).toString('base64');
  return undefined;
}

/** A claim by dotted path (`a.b.c` reads nested objects), as Envoy's StructUtils. */
export function claimAt(payload: Record<string, unknown>, path: string): unknown {
  let cur: unknown = payload;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}
