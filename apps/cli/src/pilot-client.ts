import { request } from 'undici';
import { CliError } from './errors.js';
import { readState } from './local/state.js';

/** Where pilot's HTTP API is: --pilot, then MIZZEN_PILOT, then the running local mesh, then the default port. */
export function pilotUrl(flag?: string): string {
  const raw = flag ?? process.env.MIZZEN_PILOT ?? readState()?.pilot.http ?? 'http://127.0.0.1:15014';
  return raw.replace(/\/+$/, '');
}

function describe(err: unknown): string {
  const e = err as { code?: string; message?: string; cause?: { code?: string } };
  const code = e.code ?? e.cause?.code;
  if (code === 'ECONNREFUSED') return 'connection refused';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return 'host not found';
  if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT') return 'timed out';
  return code ?? e.message ?? String(err);
}

/** A JSON call to pilot; network failures become one clear sentence. */
export async function pilotRequest<T>(
  base: string,
  path: string,
  init: { method?: string; body?: unknown } = {},
): Promise<{ status: number; body: T }> {
  let status: number;
  let text: string;
  try {
    // undici rather than fetch: fetch refuses some ports outright ("bad port"), and pilot may run on any.
    const res = await request(`${base}${path}`, {
      method: (init.method ?? 'GET') as 'GET' | 'POST',
      headers: init.body === undefined ? undefined : { 'content-type': 'application/json' },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      headersTimeout: 15_000,
      bodyTimeout: 15_000,
    });
    status = res.statusCode;
    text = await res.body.text();
  } catch (err) {
    throw new CliError(
      `cannot reach pilot at ${base} (${describe(err)}); is the mesh running? Start it with \`npx mizzen up\`.`,
    );
  }
  let body: T;
  try {
    body = JSON.parse(text) as T;
  } catch {
    throw new CliError(
      `pilot at ${base} answered ${status} with something that is not JSON: ${text.slice(0, 200)}`,
    );
  }
  return { status, body };
}
