import { Counter, Gauge, type Registry } from 'prom-client';

/**
 * What a rate limit filter decided for one rule of one request:
 * - `allowed`: under the limit;
 * - `over_limit`: rejected with 429;
 * - `shadow_over_limit`: over the limit, let through because the policy is in shadow mode;
 * - `failure_mode_allowed` / `failure_mode_denied`: the counters could not be
 *   read (Redis down or slow) and the policy's failureMode let it through or rejected it.
 */
export type RateLimitDecision =
  | 'allowed'
  | 'over_limit'
  | 'shadow_over_limit'
  | 'failure_mode_allowed'
  | 'failure_mode_denied';

export interface RateLimitDecisionLabels {
  /** `global` (shared counters) or `local` (a token bucket in the proxy). */
  readonly mode: 'global' | 'local';
  /** `namespace/name` of the RateLimitPolicy, or the filter's stat prefix. */
  readonly policy: string;
  readonly rule: string;
}

/** Where decisions are counted; the proxy reports every one. */
export interface RateLimitRecorder {
  decision(labels: RateLimitDecisionLabels, decision: RateLimitDecision): void;
  /** The shared store became usable (true) or unusable (false). */
  storeAvailability(up: boolean): void;
  /** A store call failed, by reason (`unavailable`, `timeout`, `error`). */
  storeError(reason: string): void;
}

/** Counts nothing: for proxies without a metrics registry (tests, tools). */
export const NO_RATE_LIMIT_METRICS: RateLimitRecorder = {
  decision: () => {},
  storeAvailability: () => {},
  storeError: () => {},
};

/**
 * The decisions as Prometheus metrics, served on the proxy's
 * `/stats/prometheus` next to Istio's:
 * `mizzen_ratelimit_decisions_total{mode,policy,rule,decision}`,
 * `mizzen_ratelimit_store_up` (1 while Redis answers; always 1 in memory),
 * `mizzen_ratelimit_store_errors_total{reason}`.
 */
export class PrometheusRateLimitMetrics implements RateLimitRecorder {
  private readonly decisions: Counter<'mode' | 'policy' | 'rule' | 'decision'>;
  private readonly up: Gauge;
  private readonly errors: Counter<'reason'>;

  constructor(registry: Registry, storeUp: boolean) {
    this.decisions = new Counter({
      name: 'mizzen_ratelimit_decisions_total',
      help: 'Rate limit decisions by policy, rule and outcome (allowed, over_limit, shadow_over_limit, failure_mode_allowed, failure_mode_denied).',
      labelNames: ['mode', 'policy', 'rule', 'decision'],
      registers: [registry],
    });
    this.up = new Gauge({
      name: 'mizzen_ratelimit_store_up',
      help: 'Whether the shared rate limit counters (Redis) can be used: 1 yes, 0 no.',
      registers: [registry],
    });
    this.up.set(storeUp ? 1 : 0);
    this.errors = new Counter({
      name: 'mizzen_ratelimit_store_errors_total',
      help: 'Calls to the shared rate limit counters that failed, by reason (unavailable, timeout, error).',
      labelNames: ['reason'],
      registers: [registry],
    });
  }

  decision(labels: RateLimitDecisionLabels, decision: RateLimitDecision): void {
    this.decisions.inc({ ...labels, decision });
  }

  storeAvailability(up: boolean): void {
    this.up.set(up ? 1 : 0);
  }

  storeError(reason: string): void {
    this.errors.inc({ reason });
  }
}
