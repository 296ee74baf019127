import type { RequestAttributes, ShadowResult } from '@mizzen/policy';
import type { Logger } from '@mizzen/runtime';

/**
 * One log line per istio.io/dry-run policy evaluated for a request or a
 * connection: what it would have decided, never enforced. The fields are
 * Envoy's shadow-rules metadata (`shadow_effective_policy_id`,
 * `shadow_engine_result`, under the dry-run stat prefix) and the message is
 * Envoy's RBAC debug line, so the same greps work. Logged at info: a dry-run
 * policy is put there to be watched.
 */
export function logDryRunDecisions(
  logger: Logger | undefined,
  shadow: readonly ShadowResult[],
  attrs: RequestAttributes,
  requestId?: string,
): void {
  if (!logger) return;
  for (const s of shadow) {
    if (s.kind !== 'dry-run') continue;
    const result = s.allowed ? 'allowed' : 'denied';
    logger.info(
      {
        dryRun: true,
        action: s.action,
        statPrefix: s.statPrefix,
        shadow_engine_result: result,
        shadow_effective_policy_id: s.policy ?? null,
        source: attrs.source.principal ?? attrs.source.address,
        destinationPort: attrs.destination.port,
        ...(attrs.http
          ? { method: attrs.http.method, path: attrs.http.path, authority: attrs.http.host }
          : { connection: 'tcp' }),
        ...(requestId ? { requestId } : {}),
      },
      `dry-run: shadow ${result}, matched policy ${s.policy ?? 'none'}`,
    );
  }
}
