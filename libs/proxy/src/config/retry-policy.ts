import { durationToMs } from '@mizzen/xds';
import type { RetryPolicyJson } from '../envoy/types.js';
import { fail } from './errors.js';
import { PREVIOUS_HOSTS_TYPE, PREVIOUS_PRIORITIES_TYPE } from './fields/route.js';

/** Envoy's retry_on conditions the router understands. */
export const RETRY_CONDITIONS = new Set([
  '5xx',
  'gateway-error',
  'reset',
  'reset-before-request',
  'connect-failure',
  'envoy-ratelimited',
  'retriable-4xx',
  'refused-stream',
  'retriable-status-codes',
  'retriable-headers',
  'http3-post-connect-failure',
  // gRPC conditions (x-envoy-retry-grpc-on), matched on the grpc-status of a response.
  'cancelled',
  'deadline-exceeded',
  'internal',
  'resource-exhausted',
  'unavailable',
]);

export interface RetryPolicy {
  readonly conditions: ReadonlySet<string>;
  readonly numRetries: number;
  readonly perTryTimeoutMs?: number;
  readonly retriableStatusCodes: ReadonlySet<number>;
  readonly baseIntervalMs: number;
  readonly maxIntervalMs: number;
  /** Envoy's previous_priorities retry priority: retries leave already-tried priority levels (localities). */
  readonly priority?: { readonly updateFrequency: number };
  /**
   * Envoy's previous_hosts retry host predicate: a retry prefers a host not
   * tried yet. Without it a retry may land on the same host again (a
   * consistent-hash route stays on its host).
   */
  readonly avoidPreviousHosts: boolean;
  /**
   * host_selection_retry_max_attempts (Envoy's default 1; Istio sets 5): how
   * many draws a consistent-hash table gets to find a host not tried yet.
   */
  readonly hostSelectionAttempts: number;
}

export const PREVIOUS_PRIORITIES = 'envoy.retry_priorities.previous_priorities';

type RetryPriorityJson = {
  name?: string;
  typed_config?: { '@type'?: string; update_frequency?: number };
};

function compileRetryPriority(
  json: RetryPriorityJson | undefined,
  where: string,
): RetryPolicy['priority'] | undefined {
  if (!json) return undefined;
  const type = json.typed_config?.['@type'];
  if (json.name !== PREVIOUS_PRIORITIES && type !== PREVIOUS_PRIORITIES_TYPE)
    fail(`${where}.retry_priority`, `retry priority ${json.name ?? type} is not supported`);
  const updateFrequency = json.typed_config?.update_frequency ?? 0;
  if (!(updateFrequency > 0))
    fail(`${where}.retry_priority.typed_config.update_frequency`, 'must be greater than zero');
  return { updateFrequency };
}

const PREVIOUS_HOSTS = 'envoy.retry_host_predicates.previous_hosts';

/** The retry host predicates; only previous_hosts is known (another is a NACK, never silently ignored). */
function compileHostPredicates(predicates: RetryPolicyJson['retry_host_predicate'], where: string): boolean {
  for (const [i, p] of (predicates ?? []).entries()) {
    const type = p.typed_config?.['@type'];
    if (p.name !== PREVIOUS_HOSTS && type !== PREVIOUS_HOSTS_TYPE)
      fail(`${where}.retry_host_predicate[${i}]`, `retry host predicate ${p.name ?? type} is not supported`);
  }
  return (predicates ?? []).length > 0;
}

export function compileRetryPolicy(p: RetryPolicyJson | undefined, where: string): RetryPolicy | undefined {
  if (!p) return undefined;
  const conditions = new Set<string>();
  for (const raw of (p.retry_on ?? '').split(',')) {
    const c = raw.trim();
    if (!c) continue;
    if (!RETRY_CONDITIONS.has(c)) fail(`${where}.retry_on`, `unknown retry condition "${c}"`);
    conditions.add(c);
  }
  const base = p.retry_back_off?.base_interval ? durationToMs(p.retry_back_off.base_interval)! : 25;
  const max = p.retry_back_off?.max_interval ? durationToMs(p.retry_back_off.max_interval)! : base * 10;
  if (base <= 0) fail(`${where}.retry_back_off.base_interval`, 'must be greater than zero');
  const perTry = p.per_try_timeout ? durationToMs(p.per_try_timeout) : undefined;
  return {
    conditions,
    // Envoy's default when a policy is present but names no count.
    numRetries: p.num_retries ?? 1,
    perTryTimeoutMs: perTry && perTry > 0 ? perTry : undefined,
    retriableStatusCodes: new Set(p.retriable_status_codes ?? []),
    baseIntervalMs: base,
    maxIntervalMs: Math.max(base, max),
    priority: compileRetryPriority((p as { retry_priority?: RetryPriorityJson }).retry_priority, where),
    avoidPreviousHosts: compileHostPredicates(p.retry_host_predicate, where),
    hostSelectionAttempts: hostSelectionAttempts(p.host_selection_retry_max_attempts, where),
  };
}

function hostSelectionAttempts(value: number | string | undefined, where: string): number {
  if (value === undefined) return 1;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0)
    fail(`${where}.host_selection_retry_max_attempts`, `"${value}" is not a whole number of attempts`);
  return Math.max(1, n);
}
