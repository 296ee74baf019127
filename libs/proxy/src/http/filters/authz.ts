import type {
  AuthzChain,
  AuthzDecision,
  CompiledExtAuthz,
  ExtAuthzOutcome,
  HttpRequestAttributes,
} from '@mizzen/policy';
import type { Logger } from '@mizzen/runtime';
import { fail } from '../../config/errors.js';
import type { HeaderMap } from '../../config/headers.js';
import { logDryRunDecisions } from '../../observe/dry-run-log.js';
import type { AuthzOutcomeRecord } from '../../observe/records.js';
import type { FilterStatus, HttpFilterContext } from './filter.js';
import { requestAttributes } from './request-attributes.js';
import type { FilterServices, ServiceAwareFilter } from './services.js';

/**
 * Istio's AuthorizationPolicy in the request path: a run of consecutive RBAC
 * and ext_authz filters (as pilot builds them: CUSTOM, DENY, ALLOW, AUDIT and
 * the dry-run shadows) evaluated as one chain, because a later filter reads
 * what an earlier one wrote (the CUSTOM trigger). Denied: 403
 * `RBAC: access denied`, or the external authorizer's own answer. What
 * dry-run policies would have decided is logged, counted and left in the
 * dynamic metadata for access logs.
 */
export class AuthzFilter implements ServiceAwareFilter {
  private logger?: Logger;

  constructor(
    readonly name: string,
    private readonly chain: AuthzChain,
  ) {}

  bindServices(services: FilterServices): void {
    this.logger = services.logger;
  }

  async decode(ctx: HttpFilterContext): Promise<FilterStatus> {
    const attrs = requestAttributes(ctx);
    let decision: AuthzDecision = this.chain.evaluate(attrs);
    while (decision.verdict === 'check') {
      const outcome = await checkWithAuthorizer(ctx, decision.check.authorizer, attrs.http!);
      if (outcome.allowed) applyToRequest(ctx.request.headers, outcome);
      decision = decision.resume(outcome);
    }
    Object.assign(ctx.info.dynamicMetadata, decision.metadata);
    ctx.info.authz = outcomeRecord(decision);
    const requestId = ctx.request.headers['x-request-id'];
    logDryRunDecisions(
      this.logger,
      decision.shadow,
      attrs,
      typeof requestId === 'string' ? requestId : undefined,
    );
    if (decision.verdict === 'deny') {
      if (decision.deniedBy === 'ext_authz') ctx.info.flag('UAEX');
      ctx.reply(decision.status, decision.body, headerObject(decision.headers));
      return 'stop';
    }
    if (decision.responseHeaders.length) {
      const extra = decision.responseHeaders;
      ctx.decorateResponse((_status, headers) => {
        for (const [k, v] of extra) headers[k.toLowerCase()] = v;
      });
    }
    return 'continue';
  }
}

function outcomeRecord(decision: Exclude<AuthzDecision, { verdict: 'check' }>): AuthzOutcomeRecord {
  return {
    allowed: decision.verdict === 'allow',
    ...(decision.policy !== undefined ? { policy: decision.policy } : {}),
    ...(decision.verdict === 'deny' ? { deniedBy: decision.deniedBy } : {}),
    dryRun: decision.shadow
      .filter((s) => s.kind === 'dry-run')
      .map((s) => ({ action: s.action, allowed: s.allowed, ...(s.policy ? { policy: s.policy } : {}) })),
    audited: decision.audited,
  };
}

function headerObject(pairs: readonly (readonly [string, string])[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of pairs) {
    const key = k.toLowerCase();
    const prev = out[key];
    out[key] = prev === undefined ? v : Array.isArray(prev) ? [...prev, v] : [prev, v];
  }
  return out;
}

/** The authorizer's allowed_upstream_headers(_to_append) onto the request that goes on. */
function applyToRequest(headers: HeaderMap, outcome: Extract<ExtAuthzOutcome, { allowed: true }>): void {
  for (const [k, v] of outcome.setUpstream) headers[k.toLowerCase()] = v;
  for (const [k, v] of outcome.appendUpstream) {
    const key = k.toLowerCase();
    const prev = headers[key];
    headers[key] = prev === undefined ? v : `${Array.isArray(prev) ? prev.join(',') : prev},${v}`;
  }
}

/**
 * Asks an HTTP external authorizer (Istio's envoyExtAuthzHttp provider)
 * through its cluster: 200 allows, other answers deny, and an authorizer that
 * cannot be reached in time counts as failOpen/statusOnError says.
 */
async function checkWithAuthorizer(
  ctx: HttpFilterContext,
  authorizer: CompiledExtAuthz,
  http: HttpRequestAttributes,
): Promise<ExtAuthzOutcome> {
  const check = authorizer.checkRequest(http);
  try {
    const res = await ctx.callCluster(
      authorizer.cluster,
      { method: check.method, path: check.path, headers: check.headers },
      authorizer.timeoutMs,
    );
    return authorizer.interpretResponse(res);
  } catch {
    return authorizer.onError();
  }
}

/**
 * Compiles a run of authorization filters. Checks this proxy cannot make are
 * refused here, so the config is NACKed instead of enforced differently:
 * gRPC authorizers and request bodies in the check.
 */
export function compileAuthzFilter(name: string, chain: AuthzChain, where: string): AuthzFilter {
  for (const a of chain.authorizers()) {
    if (a.transport === 'grpc')
      fail(
        where,
        `ext_authz over gRPC (envoyExtAuthzGrpc) is not supported by this proxy; use envoyExtAuthzHttp`,
      );
    if (a.maxRequestBytes !== undefined)
      fail(where, 'ext_authz with_request_body (includeRequestBodyInCheck) is not supported by this proxy');
  }
  return new AuthzFilter(name, chain);
}
