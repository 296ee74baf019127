import { type CheckBody, checkBody, type RequestBodySettings } from '@mizzen/policy';
import type { HttpFilterContext } from './filter.js';

/**
 * Buffering the request body for an external authorizer, as Envoy's
 * ext_authz filter does with `with_request_body`: up to max_request_bytes
 * before the check; a longer body is checked on its first
 * max_request_bytes when allow_partial_message is set, and otherwise
 * refused with 413 before the authorizer is asked. The bytes stay held for
 * the router, which sends the whole body upstream.
 */

export type BodyForCheck =
  /** What the check carries (nothing for a request without a body), and the body bytes received so far. */
  | { kind: 'body'; body?: CheckBody; received: number }
  /** Longer than max_request_bytes without allow_partial_message: Envoy's 413. */
  | { kind: 'too-large' };

const NO_BODY: BodyForCheck = { kind: 'body', received: 0 };

/** Buffers what `settings` ask for of the request's body (nothing when it has none, or settings are absent). */
export async function bodyForCheck(
  ctx: HttpFilterContext,
  settings: RequestBodySettings | undefined,
): Promise<BodyForCheck> {
  const body = ctx.body;
  if (!settings || !body.present) return NO_BODY;
  const max = settings.maxRequestBytes;
  if (settings.allowPartialMessage) {
    const held = await body.buffer(max);
    return { kind: 'body', body: checkBody(settings, held), received: held.length };
  }
  // A declared length over the limit is refused before a byte is read; any other body is read one byte past it.
  const declared = body.declaredLength;
  if (declared !== undefined && declared > max) return { kind: 'too-large' };
  const held = await body.buffer(max + 1);
  if (held.length > max) return { kind: 'too-large' };
  return { kind: 'body', body: checkBody(settings, held), received: held.length };
}

/**
 * Envoy's answer to a body over the buffer limit. On HTTP/1 the connection
 * is not reused: the rest of the body may still be arriving.
 */
export function replyPayloadTooLarge(ctx: HttpFilterContext): void {
  ctx.reply(413, 'Payload Too Large', ctx.req.httpVersionMajor === 2 ? {} : { connection: 'close' });
}
