import { fail } from '../common/errors.js';
import type { BufferSettingsJson } from '../envoy/types.js';

/**
 * The request body in an ext_authz check (the filter's `with_request_body`,
 * Istio's `includeRequestBodyInCheck`) as pure functions: the settings as
 * Envoy validates them, and the body as the check carries it. The proxy
 * buffers the bytes; what they become in the check is decided here.
 */

/** with_request_body (envoy.extensions.filters.http.ext_authz.v3.BufferSettings), compiled. */
export interface RequestBodySettings {
  /** How many bytes of the body the check carries (and, without allowPartialMessage, the most a body may have). */
  readonly maxRequestBytes: number;
  /** A longer body is checked on its first maxRequestBytes rather than refused with 413. */
  readonly allowPartialMessage: boolean;
  /** A gRPC check carries the bytes as `raw_body` rather than the UTF-8 `body`. */
  readonly packAsBytes: boolean;
}

/** Envoy's marker of a check that carries only the start of the body (`true`) or all of it (`false`). */
export const PARTIAL_BODY_HEADER = 'x-envoy-auth-partial-body';

/** The body part of a check: the bytes sent, and whether the request had more than those. */
export interface CheckBody {
  readonly data: Uint8Array;
  readonly partial: boolean;
}

const UINT32_MAX = 0xffff_ffff;

/** Compiles with_request_body, refusing what Envoy's validation refuses (max_request_bytes must be > 0). */
export function compileBufferSettings(json: BufferSettingsJson, where: string): RequestBodySettings {
  const max = json.max_request_bytes;
  if (!Number.isInteger(max) || max <= 0 || max > UINT32_MAX)
    fail(
      `${where}.max_request_bytes`,
      `must be a whole number of bytes greater than 0, found ${String(max)}`,
    );
  return {
    maxRequestBytes: max,
    allowPartialMessage: json.allow_partial_message === true,
    packAsBytes: json.pack_as_bytes === true,
  };
}

/**
 * What the check carries of the body bytes buffered before it, as Envoy's
 * CheckRequestUtils::setRequestBody: at most maxRequestBytes, partial when
 * more than that was buffered. (A body that stopped at exactly the limit
 * with more still to come is not marked, in Envoy as here.)
 */
export function checkBody(settings: RequestBodySettings, buffered: Uint8Array): CheckBody {
  const data = buffered.subarray(0, settings.maxRequestBytes);
  return { data, partial: data.length < buffered.length };
}

/** Length of the well-formed UTF-8 sequence at `i` (RFC 3629), or 0 when the byte there cannot start one. */
function sequenceLength(b: Uint8Array, i: number): number {
  const c = b[i]!;
  if (c < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf) => i + k < b.length && b[i + k]! >= lo && b[i + k]! <= hi;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    // No overlong forms (E0 needs A0..BF) and no UTF-16 surrogates (ED needs 80..9F).
    const second = c === 0xe0 ? cont(1, 0xa0) : c === 0xed ? cont(1, 0x80, 0x9f) : cont(1);
    return second && cont(2) ? 3 : 0;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    // No overlong forms (F0 needs 90..BF) and nothing past U+10FFFF (F4 needs 80..8F).
    const second = c === 0xf0 ? cont(1, 0x90) : c === 0xf4 ? cont(1, 0x80, 0x8f) : cont(1);
    return second && cont(2) && cont(3) ? 4 : 0;
  }
  return 0;
}

/**
 * The body as the check's UTF-8 `body` carries it, in one copy of the
 * bytes: Envoy's MessageUtil::sanitizeUtf8String replaces every byte that is
 * not part of a well-formed sequence with `!`, so there are as many bytes as
 * in the body.
 */
export function sanitizedUtf8Bytes(data: Uint8Array): Buffer {
  const out = Buffer.from(data);
  for (let i = 0; i < out.length; ) {
    const n = sequenceLength(out, i);
    if (n === 0) out[i++] = 0x21;
    else i += n;
  }
  return out;
}

/** The body as the check's UTF-8 `body` string (see {@link sanitizedUtf8Bytes}). */
export function sanitizeUtf8(data: Uint8Array): string {
  return sanitizedUtf8Bytes(data).toString('utf8');
}
