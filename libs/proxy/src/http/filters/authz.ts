import {
  type AllowedOutcome,
  type AuthzChain,
  type AuthzDecision,
  allowed,
  type CheckBody,
  type CheckDecision,
  type CompiledExtAuthz,
  type ExtAuthzOutcome,
  type ExtAuthzPerRoute,
  editHeaders,
  editQuery,
  type HttpRequestAttributes,
  requestBodySettings,
} from '@mizzen/policy';
import type { Logger } from '@mizzen/runtime';
import type { HeaderMap } from '../../config/headers.js';
import { logDryRunDecisions } from '../../observe/dry-run-log.js';
import type { AuthzOutcomeRecord } from '../../observe/records.js';
import { bodyForCheck, replyPayloadTooLarge } from './ext-authz-body.js';
import { checkWithGrpcAuthorizer, httpCheckInput } from './ext-authz-grpc.js';
import { type FilterStatus, type HttpFilterContext, perRouteConfig } from './filter.js';
import { requestAttributes } from './request-attributes.js';
import type { FilterServices, ServiceAwareFilter } from './services.js';

/**
 * Istio's AuthorizationPolicy in the request path: a run of consecutive RBAC
 * and ext_authz filters (as pilot builds them: CUSTOM, DENY, ALLOW, AUDIT and
 * the dry-run shadows) evaluated as one chain, because a later filter reads
 * what an earlier one wrote (the CUSTOM trigger). Denied: 403
 * `RBAC: access denied`, or the external authorizer's own answer (HTTP or
 * gRPC). An authorizer that checks the body gets it buffered first (413
 * for one over its limit). What dry-run policies would have decided is
 * logged, counted and left in the dynamic metadata for access logs.
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
      let outcome: ExtAuthzOutcome | 'too-large';
      try {
        outcome = await ask(ctx, decision, attrs.http!);
      } catch (err) {
        // The body could not be read (the client went away mid-body): nobody is left to answer.
        this.logger?.debug({ err }, 'request body not received for the external authorizer');
        ctx.res.destroy();
        return 'stop';
      }
      if (outcome === 'too-large') {
        replyPayloadTooLarge(ctx);
        return 'stop';
      }
      // The chain sees the authorizer's edits on its own copy of the request as it resumes; the request
      // that goes on takes them afterwards (once: its headers are the very map the chain's attributes hold).
      decision = decision.resume(outcome);
      if (outcome.allowed) applyToRequest(ctx, outcome);
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
      const edits = decision.responseHeaders;
      ctx.decorateResponse((_status, headers) => replaceHeaders(headers, editHeaders(headers, edits)));
    }
    return 'continue';
  }
}

/**
 * The check a CUSTOM policy asked for, unless the route turned ext_authz off
 * (ExtAuthzPerRoute `disabled`: the request goes on as if allowed), with the
 * body when the authorizer takes it — or `too-large`, and no check, for a
 * body over its limit.
 */
async function ask(
  ctx: HttpFilterContext,
  decision: CheckDecision,
  http: HttpRequestAttributes,
): Promise<ExtAuthzOutcome | 'too-large'> {
  const { authorizer, filterName } = decision.check;
  const perRoute = perRouteConfig<ExtAuthzPerRoute>(ctx, filterName);
  if (perRoute?.disabled) return allowed();
  const buffered = await bodyForCheck(ctx, requestBodySettings(authorizer, perRoute));
  if (buffered.kind === 'too-large') return 'too-large';
  if (authorizer.transport === 'http') return checkWithHttpAuthorizer(ctx, authorizer, http, buffered.body);
  const metadata = { ...ctx.info.dynamicMetadata, ...decision.metadata };
  return checkWithGrpcAuthorizer(ctx.callGrpc, authorizer, httpCheckInput(ctx, metadata, perRoute, buffered));
}

function outcomeRecord(decision: Exclude<AuthzDecision, { verdict: 'check' }>): AuthzOutcomeRecord {
  return {
    allowed: decision.verdict === 'allow',
    ...(decision.policy !== undefined ? { policy: decision.policy } : {}),
    ...(decision.verdict === 'deny' ? { deniedBy: decision.deniedBy } : {}),
    ...(decision.verdict === 'deny' && decision.extAuthzError ? { extAuthzError: true } : {}),
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

/** `to` becomes `from`: the same object, for the header map the request or response already holds. */
function replaceHeaders(to: HeaderMap, from: Record<string, string | string[]>): void {
  for (const k of Object.keys(to)) if (!(k in from)) delete to[k];
  Object.assign(to, from);
}

/** An allowing authorizer's edits onto the request that goes on: headers, removals, query parameters. */
function applyToRequest(ctx: HttpFilterContext, outcome: AllowedOutcome): void {
  const { upstream, removeUpstream, setQuery, removeQuery } = outcome;
  if (upstream.length || removeUpstream.length)
    replaceHeaders(ctx.request.headers, editHeaders(ctx.request.headers, upstream, removeUpstream));
  ctx.request.path = editQuery(ctx.request.path, setQuery, removeQuery);
}

/**
 * Asks an HTTP external authorizer (Istio's envoyExtAuthzHttp provider)
 * through its cluster: 200 allows, other answers deny, and an authorizer that
 * cannot be reached in time counts as failOpen/statusOnError says.
 */
async function checkWithHttpAuthorizer(
  ctx: HttpFilterContext,
  authorizer: CompiledExtAuthz,
  http: HttpRequestAttributes,
  body: CheckBody | undefined,
): Promise<ExtAuthzOutcome> {
  const check = authorizer.checkRequest(http, body);
  try {
    const res = await ctx.callCluster(
      authorizer.cluster,
      {
        method: check.method,
        path: check.path,
        headers: check.headers,
        ...(check.body ? { body: check.body } : {}),
      },
      authorizer.timeoutMs,
    );
    return authorizer.interpretResponse(res);
  } catch {
    return authorizer.onError();
  }
}

/** Compiles a run of authorization filters (their configs were checked as the chain was compiled). */
export function compileAuthzFilter(name: string, chain: AuthzChain): AuthzFilter {
  return new AuthzFilter(name, chain);
}
