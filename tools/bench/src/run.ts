import autocannon from 'autocannon';

export interface Scenario {
  name: string;
  /** Where autocannon connects. */
  port: number;
  /** The request line target: a path (direct) or an absolute URL (through a sidecar, as HTTP_PROXY clients send). */
  path: string;
  host: string;
}

export interface ScenarioResult {
  name: string;
  requestsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  requests: number;
  errors: number;
  non2xx: number;
}

export interface RunOptions {
  durationSec: number;
  connections: number;
  warmupSec: number;
  /**
   * Stop after this many requests instead of after `durationSec` (still bounded by it):
   * smoke runs check that every request is served, whatever the machine's speed.
   */
  amount?: number;
}

async function cannon(
  s: Scenario,
  durationSec: number,
  connections: number,
  amount?: number,
): Promise<autocannon.Result> {
  return autocannon({
    url: `http://127.0.0.1:${s.port}`,
    connections,
    ...(amount === undefined ? { duration: durationSec } : { amount, timeout: durationSec }),
    requests: [{ method: 'GET', path: s.path, headers: { host: s.host } }],
  });
}

/** Runs one scenario: a short warm-up (discarded), then the measured run. */
export async function runScenario(s: Scenario, opts: RunOptions): Promise<ScenarioResult> {
  if (opts.warmupSec > 0) await cannon(s, opts.warmupSec, opts.connections);
  const r = await cannon(s, opts.durationSec, opts.connections, opts.amount);
  return {
    name: s.name,
    requestsPerSec: r.requests.average,
    p50Ms: r.latency.p50,
    p99Ms: r.latency.p99,
    requests: r.requests.total,
    errors: r.errors + r.timeouts,
    non2xx: r.non2xx,
  };
}
