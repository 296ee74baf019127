import { CliError } from './errors.js';
import { readState } from './local/state.js';

/** Where pilot's HTTP API is: --pilot, then MIZZEN_PILOT, then the running local mesh, then the default port. */
export function pilotUrl(flag?: string): string {
  const raw = flag ?? process.env.MIZZEN_PILOT ?? readState()?.pilot.http ?? 'http://127.0.0.1:15014';
  return raw.replace(/\/+$/, '');
}

function describe(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code === 'ECONNREFUSED') return 'connection refused';
  if (cause?.code === 'ENOTFOUND') return 'host not found';
  if (cause?.code) return cause.code;
  return (err as Error).message;
}

/** A JSON call to pilot; network failures become one clear sentence. */
export async function pilotRequest<T>(
  base: string,
  path: string,
  init: { method?: string; body?: unknown } = {},
): Promise<{ status: number; body: T }> {
  let res: Response;
  try {
    res = await fetch(`${base}${path}`, {
      method: init.method ?? 'GET',
      headers: init.body === undefined ? undefined : { 'content-type': 'application/json' },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      signal: AbortSignal.timeout(15_000),
    });
  } catch (err) {
    throw new CliError(
      `cannot reach pilot at ${base} (${describe(err)}); is the mesh running? Start it with \`npx mizzen up\`.`,
    );
  }
  const text = await res.text();
  let body: T;
  try {
    body = JSON.parse(text) as T;
  } catch {
    throw new CliError(
      `pilot at ${base} answered ${res.status} with something that is not JSON: ${text.slice(0, 200)}`,
    );
  }
  return { status: res.status, body };
}
