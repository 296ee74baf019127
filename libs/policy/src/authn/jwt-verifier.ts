import type { RequestAuth } from '../authz/attributes.js';
import { parseEnvoyDuration } from '../common/duration.js';
import { fail } from '../common/errors.js';
import { compileHeaderMatcher, pathWithoutQuery } from '../common/matchers.js';
import { compileFullMatch } from '../common/regex.js';
import {
  type HttpFilterJson,
  JWT_AUTHN_TYPE,
  type JwtAuthenticationJson,
  type JwtProviderJson,
  type JwtRequirementJson,
  type RouteMatchJson,
} from '../envoy/types.js';
import {
  inlineKeySource,
  type JwksEvent,
  type JwksFetcher,
  type JwksStatus,
  type KeySource,
  RemoteJwks,
  undiciJwksFetcher,
} from './jwks.js';
import {
  Extractor,
  type HeaderBag,
  headerValue,
  issuerAllowed,
  removeQueryParam,
  type TokenLocation,
} from './jwt-extract.js';
import { audiencesAllowed, checkTime, type ParsedJwt, parseJwt } from './jwt-parse.js';
import { httpStatusFor, JWT_STATUS_MESSAGES, type JwtStatus } from './jwt-status.js';
import { claimAt, claimHeaderValue, requestAuthFromPayloads } from './request-auth.js';

/**
 * Envoy's jwt_authn HTTP filter, run from its JwtAuthentication config (what
 * pilot translates RequestAuthentication into): requirement rules by route,
 * requirement trees (provider, requires_any/all, allow_missing,
 * allow_missing_or_failed) with Envoy's status aggregation, token
 * extraction, JWKS, time/issuer/audience/signature checks, and on success the
 * payload header, claim headers, token removal and payload metadata.
 * Independent of any proxy: the clock and the JWKS fetcher are injected.
 */

export interface JwtAuthnOptions {
  /** Milliseconds since the epoch (default Date.now). Used for exp/nbf and JWKS cache ages. */
  now?: () => number;
  /** Fetches remote JWKS (default: undici with the provider's timeout). */
  fetchJwks?: JwksFetcher;
  /** Every remote JWKS fetch, successful or not; failures keep the last good keys. */
  onJwksEvent?: (e: JwksEvent) => void;
  /** Minimum time between two fetches of one JWKS (failed refetch delay, unknown-kid rate limit). Default 1000. */
  minRefreshIntervalMs?: number;
  /** Cache duration when remote_jwks.cache_duration is unset (Envoy: 10 minutes). */
  defaultCacheDurationMs?: number;
}

/** The request as jwt_authn sees it. Header names are matched case-insensitively. */
export interface JwtAuthnRequest {
  method: string;
  /** :path with the query string. */
  path: string;
  host?: string;
  scheme?: string;
  headers: Readonly<Record<string, string | readonly string[] | undefined>>;
}

export type JwtAuthnOutcome =
  | {
      ok: true;
      /** The request headers to send upstream (token removed unless forwarded, payload/claim headers added). */
      headers: HeaderBag;
      /** :path to send upstream (a token in a query parameter removed unless forwarded). */
      path: string;
      /** jwt_authn dynamic metadata: payload_in_metadata key → payload. */
      payloads: Record<string, Record<string, unknown>>;
      /** request.auth.* for authorization, when a token was verified; absent when there was none. */
      auth?: RequestAuth;
    }
  | {
      ok: false;
      code: JwtStatus;
      /** 401, or 403 for a token whose audience is not allowed (Envoy). */
      status: 401 | 403;
      /** Envoy's message (`Jwt is expired`, …), empty with strip_failure_response. */
      body: string;
      headers: { 'www-authenticate': string };
    };

interface Provider {
  name: string;
  config: JwtProviderJson;
  issuer: string;
  audiences: readonly string[];
  clockSkewSeconds: number;
  keys: KeySource;
  extractor: Extractor;
}

interface Ctx {
  headers: HeaderBag;
  path: string;
  payloads: Record<string, Record<string, unknown>>;
  raw: Record<string, Record<string, unknown>>;
}

type Verifier = (ctx: Ctx) => Promise<JwtStatus>;

interface Rule {
  matches: (req: JwtAuthnRequest, lookup: (name: string) => string | undefined) => boolean;
  verifier?: Verifier;
}

function compileRouteMatch(m: RouteMatchJson, where: string): Rule['matches'] {
  const cs = m.case_sensitive !== false;
  const norm = (s: string) => (cs ? s : s.toLowerCase());
  let pathTest: (path: string) => boolean;
  if (m.prefix !== undefined) {
    const want = norm(m.prefix);
    pathTest = (p) => norm(p).startsWith(want);
  } else if (m.path !== undefined) {
    const want = norm(m.path);
    pathTest = (p) => norm(p) === want;
  } else if (m.safe_regex) {
    pathTest = compileFullMatch(m.safe_regex.regex, `${where}.safe_regex`);
  } else if (m.path_separated_prefix !== undefined) {
    const want = norm(m.path_separated_prefix);
    pathTest = (p) => {
      const n = norm(p);
      return n === want || (n.startsWith(want) && n[want.length] === '/');
    };
  } else fail(where, 'route match needs prefix, path, safe_regex or path_separated_prefix');
  const headers = (m.headers ?? []).map((h, i) => compileHeaderMatcher(h, `${where}.headers[${i}]`));
  return (req, lookup) => pathTest(pathWithoutQuery(req.path)) && headers.every((h) => h(lookup));
}

export class JwtAuthenticator {
  private readonly now: () => number;
  private readonly providers: Map<string, Provider>;
  private readonly rules: Rule[];
  private readonly bypassCorsPreflight: boolean;
  private readonly stripFailureResponse: boolean;
  private timer?: ReturnType<typeof setInterval>;

  private constructor(config: JwtAuthenticationJson, opts: JwtAuthnOptions, where: string) {
    this.now = opts.now ?? Date.now;
    this.bypassCorsPreflight = config.bypass_cors_preflight === true;
    this.stripFailureResponse = config.strip_failure_response === true;
    if (config.filter_state_rules !== undefined)
      fail(`${where}.filter_state_rules`, 'is not supported by this proxy');
    this.providers = new Map(
      Object.entries(config.providers ?? {}).map(([name, p]) => [
        name,
        this.compileProvider(name, p, opts, `${where}.providers[${JSON.stringify(name)}]`),
      ]),
    );
    const requirementMap = new Map(
      Object.entries(config.requirement_map ?? {}).map(([name, r]) => [
        name,
        this.compileRequirement(r, `${where}.requirement_map[${JSON.stringify(name)}]`),
      ]),
    );
    this.rules = (config.rules ?? []).map((r, i) => {
      const at = `${where}.rules[${i}]`;
      if (!r.match) fail(at, 'requirement rule needs a match');
      let verifier: Verifier | undefined;
      if (r.requires) verifier = this.compileRequirement(r.requires, `${at}.requires`);
      else if (r.requirement_name !== undefined) {
        verifier = requirementMap.get(r.requirement_name);
        if (!verifier) fail(`${at}.requirement_name`, `"${r.requirement_name}" is not in requirement_map`);
      }
      return { matches: compileRouteMatch(r.match, `${at}.match`), verifier };
    });
  }

  /** Compiles a JwtAuthentication config, or the jwt_authn HTTP filter that carries one. */
  static compile(
    config: JwtAuthenticationJson | HttpFilterJson,
    opts: JwtAuthnOptions = {},
    where = 'jwt_authn',
  ): JwtAuthenticator {
    if ('typed_config' in config) {
      const { '@type': type, ...rest } = config.typed_config;
      if (type !== JWT_AUTHN_TYPE) fail(where, `expected ${JWT_AUTHN_TYPE}, got ${type}`);
      return new JwtAuthenticator(rest as JwtAuthenticationJson, opts, `${where} (${config.name})`);
    }
    return new JwtAuthenticator(config, opts, where);
  }

  private compileProvider(name: string, p: JwtProviderJson, opts: JwtAuthnOptions, where: string): Provider {
    let keys: KeySource;
    if (p.remote_jwks) {
      const uri = p.remote_jwks.http_uri?.uri;
      if (!uri) fail(`${where}.remote_jwks.http_uri`, 'needs a uri');
      const timeout = p.remote_jwks.http_uri.timeout;
      keys = new RemoteJwks({
        provider: name,
        uri,
        timeoutMs: timeout ? parseEnvoyDuration(timeout, `${where}.remote_jwks.http_uri.timeout`) : 5000,
        cacheDurationMs: p.remote_jwks.cache_duration
          ? parseEnvoyDuration(p.remote_jwks.cache_duration, `${where}.remote_jwks.cache_duration`)
          : (opts.defaultCacheDurationMs ?? 600_000),
        minRefreshIntervalMs: opts.minRefreshIntervalMs ?? 1000,
        fetch: opts.fetchJwks ?? undiciJwksFetcher,
        now: this.now,
        onEvent: opts.onJwksEvent,
      });
    } else if (p.local_jwks?.inline_string !== undefined) {
      keys = inlineKeySource(name, p.local_jwks.inline_string);
    } else if (p.local_jwks?.filename !== undefined) {
      fail(`${where}.local_jwks.filename`, 'JWKS files are not supported; use inline_string or remote_jwks');
    } else fail(where, 'provider needs remote_jwks or local_jwks');
    for (const [i, c] of (p.claim_to_headers ?? []).entries()) {
      if (!c.header_name || !c.claim_name)
        fail(`${where}.claim_to_headers[${i}]`, 'needs header_name and claim_name');
    }
    return {
      name,
      config: p,
      issuer: p.issuer ?? '',
      audiences: p.audiences ?? [],
      clockSkewSeconds: p.clock_skew_seconds && p.clock_skew_seconds > 0 ? p.clock_skew_seconds : 60,
      keys,
      extractor: new Extractor([p]),
    };
  }

  private provider(name: string, where: string): Provider {
    const p = this.providers.get(name);
    if (!p) fail(where, `Required provider ['${name}'] is not configured.`);
    return p;
  }

  private compileRequirement(r: JwtRequirementJson, where: string): Verifier {
    if (r.provider_name !== undefined) {
      const p = this.provider(r.provider_name, `${where}.provider_name`);
      return (ctx) => this.verifyProvider(p, undefined, ctx);
    }
    if (r.provider_and_audiences !== undefined) {
      const p = this.provider(r.provider_and_audiences.provider_name, `${where}.provider_and_audiences`);
      const audiences = r.provider_and_audiences.audiences ?? [];
      return (ctx) => this.verifyProvider(p, audiences.length ? audiences : undefined, ctx);
    }
    if (r.requires_any !== undefined)
      return this.compileAny(r.requires_any.requirements ?? [], `${where}.requires_any`);
    if (r.requires_all !== undefined) {
      const children = (r.requires_all.requirements ?? []).map((c, i) =>
        this.compileRequirement(c, `${where}.requires_all.requirements[${i}]`),
      );
      return async (ctx) => {
        for (const child of children) {
          const s = await child(ctx);
          if (s !== 'Ok') return s;
        }
        return 'Ok';
      };
    }
    if (r.allow_missing_or_failed !== undefined) return (ctx) => this.verifyAny(ctx, true, false);
    if (r.allow_missing !== undefined) return (ctx) => this.verifyAny(ctx, false, true);
    return async () => 'Ok';
  }

  /** Envoy's AnyVerifierImpl: the first OK child wins; else the most telling error, softened by allow_missing(_or_failed). */
  private compileAny(requirements: readonly JwtRequirementJson[], where: string): Verifier {
    let allowMissingOrFailed = false;
    let allowMissing = false;
    const children: Verifier[] = [];
    requirements.forEach((c, i) => {
      if (c.allow_missing_or_failed !== undefined) allowMissingOrFailed = true;
      else if (c.allow_missing !== undefined) allowMissing = true;
      else children.push(this.compileRequirement(c, `${where}.requirements[${i}]`));
    });
    if (children.length === 0 && (allowMissingOrFailed || allowMissing)) {
      const failed = allowMissingOrFailed;
      children.push((ctx) => this.verifyAny(ctx, failed, !failed));
    }
    return async (ctx) => {
      const statuses: JwtStatus[] = [];
      for (const child of children) {
        const s = await child(ctx);
        if (s === 'Ok') return 'Ok';
        statuses.push(s);
      }
      let final: JwtStatus = 'JwtMissed';
      for (const s of statuses) {
        if ((s !== 'JwtMissed' && s !== 'JwtUnknownIssuer') || final === 'JwtMissed') final = s;
      }
      if (allowMissingOrFailed) return 'Ok';
      if (allowMissing && final === 'JwtMissed') return 'Ok';
      return final;
    };
  }

  /** A provider's verifier: its locations, its issuer; every token found must verify. */
  private async verifyProvider(
    p: Provider,
    audiences: readonly string[] | undefined,
    ctx: Ctx,
  ): Promise<JwtStatus> {
    p.extractor.sanitizeHeaders(ctx.headers);
    const tokens = p.extractor.extract(ctx.headers, ctx.path);
    return this.verifyTokens(tokens, ctx, {
      provider: p,
      audiences,
      allowFailed: false,
      allowMissing: false,
    });
  }

  /** allow_missing / allow_missing_or_failed: tokens from every provider's locations, provider chosen by issuer. */
  private async verifyAny(ctx: Ctx, allowFailed: boolean, allowMissing: boolean): Promise<JwtStatus> {
    const all = [...this.providers.values()];
    const extractor = new Extractor(all.map((p) => p.config));
    extractor.sanitizeHeaders(ctx.headers);
    const tokens = extractor.extract(ctx.headers, ctx.path);
    return this.verifyTokens(tokens, ctx, { allowFailed, allowMissing });
  }

  private async verifyTokens(
    tokens: TokenLocation[],
    ctx: Ctx,
    how: { provider?: Provider; audiences?: readonly string[]; allowFailed: boolean; allowMissing: boolean },
  ): Promise<JwtStatus> {
    let status: JwtStatus = 'JwtMissed';
    // Envoy verifies from the last token found; all must verify unless failures are allowed.
    for (const loc of [...tokens].reverse()) {
      status = await this.verifyToken(loc, how.provider, how.audiences, ctx);
      if (status !== 'Ok' && !how.allowFailed && !how.allowMissing) return status;
    }
    if (how.allowFailed) return 'Ok';
    if (how.allowMissing && status === 'JwtMissed') return 'Ok';
    return status;
  }

  private findByIssuer(iss: string): Provider | undefined {
    const all = [...this.providers.values()];
    return all.find((p) => p.issuer === iss) ?? all.find((p) => p.issuer === '');
  }

  private async verifyToken(
    loc: TokenLocation,
    specific: Provider | undefined,
    audiences: readonly string[] | undefined,
    ctx: Ctx,
  ): Promise<JwtStatus> {
    const jwt = parseJwt(loc.token);
    if (typeof jwt === 'string') return jwt;
    if (!issuerAllowed(loc, jwt.iss)) return 'JwtUnknownIssuer';
    const p = specific ?? this.findByIssuer(jwt.iss);
    if (!p) return 'JwtUnknownIssuer';
    const time = checkTime(jwt, Math.floor(this.now() / 1000), p.clockSkewSeconds);
    if (time !== 'Ok') return time;
    if (!audiencesAllowed(audiences ?? p.audiences, jwt.audiences)) return 'JwtAudienceNotAllowed';
    let keys = await p.keys.keys();
    if (jwt.kid && p.keys.remote && (typeof keys === 'string' || !keys.hasKid(jwt.kid))) {
      // A key we do not have yet: the issuer may have rotated its keys.
      if (await p.keys.refreshForUnknownKid(jwt.kid)) keys = await p.keys.keys();
    }
    if (typeof keys === 'string') return keys;
    const verified = await keys.verify(jwt);
    if (verified !== 'Ok') return verified;
    this.handleGoodJwt(p, jwt, loc, ctx);
    return 'Ok';
  }

  private handleGoodJwt(p: Provider, jwt: ParsedJwt, loc: TokenLocation, ctx: Ctx): void {
    const c = p.config;
    const add = (name: string, value: string) => {
      const key = name.toLowerCase();
      const prev = ctx.headers[key];
      ctx.headers[key] = prev === undefined ? value : [...(typeof prev === 'string' ? [prev] : prev), value];
    };
    if (c.forward_payload_header) {
      let payload = jwt.payloadBase64Url;
      if (c.pad_forward_payload_header) payload += '='.repeat((4 - (payload.length % 4)) % 4);
      add(c.forward_payload_header, payload);
    }
    for (const h of c.claim_to_headers ?? []) {
      const value = claimHeaderValue(claimAt(jwt.payload, h.claim_name));
      if (value !== undefined) add(h.header_name, value);
    }
    if (!c.forward) {
      if (loc.kind === 'header') delete ctx.headers[loc.name];
      else if (loc.kind === 'param') ctx.path = removeQueryParam(ctx.path, loc.name);
      // Envoy leaves tokens in cookies in place.
    }
    if (c.payload_in_metadata) {
      const normalized: Record<string, unknown> = { ...jwt.payload };
      for (const claim of c.normalize_payload_in_metadata?.space_delimited_claims ?? []) {
        const v = jwt.payload[claim];
        if (typeof v === 'string') normalized[claim] = v.split(' ').filter((w) => w !== '');
      }
      ctx.payloads[c.payload_in_metadata] = normalized;
      ctx.raw[c.payload_in_metadata] = jwt.payload;
    }
  }

  /** Authenticates one request. Never throws for request content. */
  async authenticate(req: JwtAuthnRequest): Promise<JwtAuthnOutcome> {
    const headers: HeaderBag = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (v === undefined) continue;
      const key = k.toLowerCase();
      const values = typeof v === 'string' ? [v] : [...v];
      const prev = headers[key];
      headers[key] =
        prev === undefined ? (values.length === 1 ? values[0]! : values) : [...[prev].flat(), ...values];
    }
    const lookup = (name: string) => {
      if (name === ':path') return req.path;
      if (name === ':method') return req.method;
      if (name === ':authority') return req.host ?? headerValue(headers, 'host');
      return headerValue(headers, name);
    };
    const ctx: Ctx = { headers, path: req.path, payloads: {}, raw: {} };
    const pass = (): JwtAuthnOutcome => {
      const auth = requestAuthFromPayloads(ctx.raw);
      return {
        ok: true,
        headers: ctx.headers,
        path: ctx.path,
        payloads: ctx.payloads,
        ...(auth ? { auth } : {}),
      };
    };
    if (
      this.bypassCorsPreflight &&
      req.method.toUpperCase() === 'OPTIONS' &&
      headerValue(headers, 'origin') !== undefined &&
      headerValue(headers, 'access-control-request-method') !== undefined
    ) {
      return pass();
    }
    const rule = this.rules.find((r) => r.matches(req, lookup));
    if (!rule?.verifier) return pass();
    const status = await rule.verifier(ctx);
    if (status === 'Ok') return pass();
    const scheme = req.scheme ?? headerValue(headers, 'x-forwarded-proto') ?? 'http';
    const host = req.host ?? headerValue(headers, 'host') ?? '';
    const realm = `Bearer realm="${scheme}://${host}${pathWithoutQuery(req.path)}"`;
    return {
      ok: false,
      code: status,
      status: httpStatusFor(status),
      body: this.stripFailureResponse ? '' : JWT_STATUS_MESSAGES[status],
      headers: { 'www-authenticate': status === 'JwtMissed' ? realm : `${realm}, error="invalid_token"` },
    };
  }

  /** Fetches every remote JWKS now (at config time, like Envoy's async_fetch). */
  async prefetch(): Promise<void> {
    await Promise.all(
      [...this.providers.values()].filter((p) => p.keys.remote).map((p) => p.keys.refresh('prefetch')),
    );
  }

  /** Refreshes every remote JWKS every `intervalMs` in the background (timer does not keep the process alive). */
  startBackgroundRefresh(intervalMs: number): void {
    this.stopBackgroundRefresh();
    this.timer = setInterval(() => {
      for (const p of this.providers.values()) if (p.keys.remote) void p.keys.refresh('periodic');
    }, intervalMs);
    this.timer.unref?.();
  }

  stopBackgroundRefresh(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Key counts, fetch times and last errors of every provider's JWKS. */
  jwksStatus(): JwksStatus[] {
    return [...this.providers.values()].map((p) => p.keys.status());
  }
}
