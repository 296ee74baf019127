import { requestJson } from './http-json.js';
import { readState } from './local/state.js';

/** Where pilot's HTTP API is: --pilot, then MIZZEN_PILOT, then the running local mesh, then the default port. */
export function pilotUrl(flag?: string): string {
  const raw = flag ?? process.env.MIZZEN_PILOT ?? readState()?.pilot.http ?? 'http://127.0.0.1:15014';
  return raw.replace(/\/+$/, '');
}

/** A JSON call to pilot; network failures become one clear sentence. */
export async function pilotRequest<T>(
  base: string,
  path: string,
  init: { method?: string; body?: unknown } = {},
): Promise<{ status: number; body: T }> {
  return requestJson<T>(`${base}${path}`, {
    ...init,
    who: `pilot at ${base}`,
    unreachable: (reason) =>
      `cannot reach pilot at ${base} (${reason}); is the mesh running? Start it with \`npx mizzen up\`.`,
  });
}
