import { getJson } from './http.js';
import type { Proc } from './processes.js';

/** The JSON access-log lines (Istio's `accessLogEncoding: JSON`) a proxy process wrote on its stdout so far. */
export function accessLogLines(proc: Proc): Record<string, unknown>[] {
  return proc
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{') && l.includes('"response_flags"'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

type Json = Record<string, unknown>;

/**
 * The `access_log` entries of every HTTP connection manager (or tcp_proxy)
 * in a proxy's listeners of one direction, as its admin `/config_dump` shows
 * the config it applied: what says a Telemetry change is in force at that proxy.
 */
export async function appliedAccessLogs(
  adminPort: number,
  direction: 'INBOUND' | 'OUTBOUND',
  network: 'HttpConnectionManager' | 'TcpProxy' = 'HttpConnectionManager',
): Promise<Json[][]> {
  const dump = await getJson<{ configs: { dynamic_listeners?: { active_state?: { listener?: Json } }[] }[] }>(
    `http://127.0.0.1:${adminPort}/config_dump`,
  );
  const out: Json[][] = [];
  for (const c of dump.configs)
    for (const l of c.dynamic_listeners ?? []) {
      const listener = l.active_state?.listener;
      if (listener?.traffic_direction !== direction) continue;
      for (const chain of (listener.filter_chains ?? []) as Json[])
        for (const f of (chain.filters ?? []) as Json[]) {
          const typed = f.typed_config as Json | undefined;
          if (String(typed?.['@type']).endsWith(network)) out.push((typed?.access_log ?? []) as Json[]);
        }
    }
  return out;
}
