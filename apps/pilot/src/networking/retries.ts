import type { HTTPRetry } from '@mizzen/api';
import { envoyDuration } from './durations.js';
import type { Json } from './envoy.js';

/** Envoy's retry host predicate that steers a retry away from the hosts already tried. */
export const PREVIOUS_HOSTS_PREDICATE: Json = {
  name: 'envoy.retry_host_predicates.previous_hosts',
  typed_config: {
    '@type': 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate',
  },
};

const PREVIOUS_PRIORITIES_TYPE =
  'type.googleapis.com/envoy.extensions.retry.priority.previous_priorities.v3.PreviousPrioritiesConfig';

/** Istio's retryOn when a VirtualService sets none (and for routes without `retries`). */
export const DEFAULT_RETRY_ON = 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes';

/**
 * Istio's retry policy for routes that do not configure `retries`: two
 * retries on connection failures, refused streams, gRPC unavailable and
 * cancelled, and 503; each retry prefers a host not tried yet — except on
 * routes that hash to a host (consistent hash), which stay on theirs.
 */
export function defaultRetryPolicy(consistentHash = false): Json {
  const policy: Json = {
    retry_on: DEFAULT_RETRY_ON,
    num_retries: 2,
    retriable_status_codes: [503],
    host_selection_retry_max_attempts: 5,
  };
  if (!consistentHash) policy.retry_host_predicate = [PREVIOUS_HOSTS_PREDICATE];
  return policy;
}

/** Splits Istio's retryOn into Envoy's conditions and the HTTP status codes it lists. */
function parseRetryOn(retryOn: string): { conditions: string[]; codes: number[] } {
  const conditions: string[] = [];
  const codes: number[] = [];
  for (const part of retryOn
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)) {
    if (/^[1-5]\d\d$/.test(part)) codes.push(Number(part));
    else conditions.push(part);
  }
  if (codes.length && !conditions.includes('retriable-status-codes'))
    conditions.push('retriable-status-codes');
  return { conditions, codes };
}

/**
 * A route's `retries` as Envoy's retry policy, the way Istio's
 * retry.ConvertPolicy builds it: no `retries` gets the default policy,
 * `attempts: 0` none at all (no retry of any kind), otherwise the default
 * with the user's fields laid over it.
 */
export function retryPolicy(retries: HTTPRetry | undefined, consistentHash: boolean): Json | undefined {
  const policy = defaultRetryPolicy(consistentHash);
  if (!retries) return policy;
  if ((retries.attempts ?? 0) <= 0) return undefined;
  policy.num_retries = retries.attempts;
  if (retries.retryOn) {
    const { conditions, codes } = parseRetryOn(retries.retryOn);
    policy.retry_on = conditions.join(',');
    if (codes.length) policy.retriable_status_codes = codes;
    else delete policy.retriable_status_codes;
  }
  if (retries.perTryTimeout) policy.per_try_timeout = envoyDuration(retries.perTryTimeout);
  if (retries.retryIgnorePreviousHosts !== undefined) {
    if (retries.retryIgnorePreviousHosts) policy.retry_host_predicate = [PREVIOUS_HOSTS_PREDICATE];
    else delete policy.retry_host_predicate;
  }
  // Istio's retryRemoteLocalities: Envoy's previous_priorities, updated every two attempts.
  if (retries.retryRemoteLocalities) {
    policy.retry_priority = {
      name: 'envoy.retry_priorities.previous_priorities',
      typed_config: { '@type': PREVIOUS_PRIORITIES_TYPE, update_frequency: 2 },
    };
  }
  if (retries.backoff) policy.retry_back_off = { base_interval: envoyDuration(retries.backoff) };
  return policy;
}
