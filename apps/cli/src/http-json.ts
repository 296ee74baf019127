import { request } from 'undici';
import { CliError } from './errors.js';

/** A network failure in a few words: `connection refused`, `timed out`… */
export function describeNetworkError(err: unknown): string {
  const e = err as { code?: string; message?: string; cause?: { code?: string } };
  const code = e.code ?? e.cause?.code;
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'host not found';
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT') return 'timed out';
  return code ?? e.message ?? String(err);
}

/**
 * A JSON call over HTTP. `unreachable` turns a network failure into the
 * sentence the user sees; `who` names the server when the answer is not JSON.
 */
export async function requestJson<T>(
  url: string,
  opts: {
    unreachable: (reason: string) => string;
    who: string;
    method?: string;
    body?: unknown;
  },
): Promise<{ status: number; body: T }> {
  let status: number;
  let text: string;
  try {
    // undici rather than fetch: fetch refuses some ports outright ("bad port"), and a server may run on any.
    const res = await request(url, {
      method: (opts.method ?? 'GET') as 'GET' | 'POST',
      headers: opts.body === undefined ? undefined : { 'content-type': 'application/json' },
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      headersTimeout: 15_000,
      bodyTimeout: 15_000,
    });
    status = res.statusCode;
    text = await res.body.text();
  } catch (err) {
    throw new CliError(opts.unreachable(describeNetworkError(err)));
  }
  try {
    return { status, body: JSON.parse(text) as T };
  } catch {
    throw new CliError(
      `${opts.who} answered ${status} with something that is not JSON: ${text.slice(0, 200)}`,
    );
  }
}
