import { compactVerify, importJWK, type JWK } from 'jose';
import { request } from 'undici';
import type { ParsedJwt } from './jwt-parse.js';
import type { JwtStatus } from './jwt-status.js';

/**
 * JSON Web Key Sets: parsing with jwt_verify_lib's rules, signature checks
 * with `jose`, and a remote key set that is fetched, cached, refreshed when
 * stale or when a token names an unknown `kid`, and that keeps its last good
 * keys when a fetch fails.
 */

/** Fetches a JWKS document; resolves with the body, rejects on any failure. */
export type JwksFetcher = (uri: string, init: { timeoutMs: number }) => Promise<string>;

/** The default fetcher: undici, a bounded timeout, only 2xx accepted. */
export const undiciJwksFetcher: JwksFetcher = async (uri, { timeoutMs }) => {
  const res = await request(uri, {
    method: 'GET',
    headers: { accept: 'application/json' },
    headersTimeout: timeoutMs,
    bodyTimeout: timeoutMs,
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await res.body.text();
  if (res.statusCode < 200 || res.statusCode >= 300)
    throw new Error(`GET ${uri} answered HTTP ${res.statusCode}`);
  return text;
};

interface Key {
  kid?: string;
  alg?: string;
  kty: string;
  crv?: string;
  jwk: JWK;
}

export class KeySet {
  private readonly imported = new Map<string, Promise<Awaited<ReturnType<typeof importJWK>>>>();

  private constructor(readonly keys: readonly Key[]) {}

  /** jwt_verify_lib's Jwks::createFrom: invalid keys are skipped; none valid is an error. */
  static parse(text: string): KeySet | JwtStatus {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      return 'JwksParseError';
    }
    if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return 'JwksParseError';
    const keys = (doc as { keys?: unknown }).keys;
    if (keys === undefined) return 'JwksNoKeys';
    if (!Array.isArray(keys)) return 'JwksBadKeys';
    const valid = keys.map(validKey).filter((k): k is Key => k !== undefined);
    if (valid.length === 0) return 'JwksNoValidKeys';
    return new KeySet(valid);
  }

  hasKid(kid: string): boolean {
    return this.keys.some((k) => k.kid === kid);
  }

  /**
   * jwt_verify_lib's verifyJwtWithoutTimeChecking: try every key whose kid
   * (when both have one) and alg (when the key has one) fit the token; no
   * such key → JwksKidAlgMismatch, keys that fit but do not verify →
   * JwtVerificationFail.
   */
  async verify(jwt: ParsedJwt): Promise<JwtStatus> {
    let matched = false;
    for (const [i, key] of this.keys.entries()) {
      if (jwt.kid && key.kid && key.kid !== jwt.kid) continue;
      if (key.alg && key.alg !== jwt.alg) continue;
      if (!compatible(key, jwt.alg)) continue;
      matched = true;
      const cacheKey = `${i}|${jwt.alg}`;
      let imported = this.imported.get(cacheKey);
      if (!imported) {
        imported = importJWK({ ...key.jwk, alg: jwt.alg }, jwt.alg);
        this.imported.set(cacheKey, imported);
      }
      try {
        await compactVerify(jwt.token, await imported, { algorithms: [jwt.alg] });
        return 'Ok';
      } catch {
        // a key that fits but does not verify: try the next one
      }
    }
    return matched ? 'JwtVerificationFail' : 'JwksKidAlgMismatch';
  }
}

function validKey(raw: unknown): Key | undefined {
  if (raw === null || typeof raw !== 'object') return undefined;
  const k = raw as Record<string, unknown>;
  const str = (v: unknown) => typeof v === 'string' && v !== '';
  if (k.kid !== undefined && typeof k.kid !== 'string') return undefined;
  if (k.alg !== undefined && typeof k.alg !== 'string') return undefined;
  const alg = k.alg as string | undefined;
  switch (k.kty) {
    case 'RSA':
      if (!str(k.n) || !str(k.e)) return undefined;
      if (alg && !/^(RS|PS)/.test(alg)) return undefined;
      break;
    case 'EC':
      if (!str(k.x) || !str(k.y) || !['P-256', 'P-384', 'P-521'].includes(k.crv as string)) return undefined;
      if (alg && !alg.startsWith('ES')) return undefined;
      break;
    case 'oct':
      if (!str(k.k)) return undefined;
      if (alg && !alg.startsWith('HS')) return undefined;
      break;
    case 'OKP':
      if (k.crv !== 'Ed25519' || !str(k.x)) return undefined;
      if (alg && alg !== 'EdDSA') return undefined;
      break;
    default:
      return undefined;
  }
  return {
    kty: k.kty as string,
    ...(k.kid !== undefined ? { kid: k.kid as string } : {}),
    ...(alg ? { alg } : {}),
    ...(typeof k.crv === 'string' ? { crv: k.crv } : {}),
    jwk: k as JWK,
  };
}

const EC_CURVES: Record<string, string> = { ES256: 'P-256', ES384: 'P-384', ES512: 'P-521' };

function compatible(key: Key, alg: string): boolean {
  if (alg.startsWith('RS') || alg.startsWith('PS')) return key.kty === 'RSA';
  if (alg.startsWith('ES')) return key.kty === 'EC' && key.crv === EC_CURVES[alg];
  if (alg.startsWith('HS')) return key.kty === 'oct';
  return alg === 'EdDSA' && key.kty === 'OKP';
}

/** What happened when fetching a remote key set (for logs and metrics). */
export interface JwksEvent {
  provider: string;
  uri: string;
  reason: 'initial' | 'expired' | 'unknown-kid' | 'periodic' | 'prefetch';
  outcome: 'fetched' | 'failed';
  /** For failures: why, and whether the previous keys are still in use. */
  error?: string;
  keptPreviousKeys?: boolean;
  keys?: number;
}

export interface RemoteJwksOptions {
  provider: string;
  uri: string;
  timeoutMs: number;
  cacheDurationMs: number;
  /** No two fetches closer together than this (failed refetch delay, and the unknown-kid rate limit). */
  minRefreshIntervalMs: number;
  fetch: JwksFetcher;
  now: () => number;
  onEvent?: (e: JwksEvent) => void;
}

export interface JwksStatus {
  provider: string;
  uri?: string;
  keys: number;
  fetchedAt?: number;
  lastError?: { at: number; message: string };
}

export type KeySource = {
  /** Keys for verification now (refreshing first if stale), or why there are none. */
  keys(): Promise<KeySet | JwtStatus>;
  /** A token names a kid the keys lack: refresh (rate-limited); true if a refresh ran. */
  refreshForUnknownKid(kid: string): Promise<boolean>;
  refresh(reason: JwksEvent['reason']): Promise<void>;
  readonly remote: boolean;
  status(): JwksStatus;
};

/** Inline keys (local_jwks.inline_string): parsed once. */
export function inlineKeySource(provider: string, text: string): KeySource {
  const parsed = KeySet.parse(text);
  return {
    keys: async () => parsed,
    refreshForUnknownKid: async () => false,
    refresh: async () => {},
    remote: false,
    status: () => ({ provider, keys: typeof parsed === 'string' ? 0 : parsed.keys.length }),
  };
}

export class RemoteJwks implements KeySource {
  readonly remote = true;
  private current?: { set: KeySet; fetchedAt: number };
  private lastAttempt = Number.NEGATIVE_INFINITY;
  private lastError?: { at: number; message: string };
  private inflight?: Promise<void>;

  constructor(private readonly opts: RemoteJwksOptions) {}

  status(): JwksStatus {
    return {
      provider: this.opts.provider,
      uri: this.opts.uri,
      keys: this.current?.set.keys.length ?? 0,
      ...(this.current ? { fetchedAt: this.current.fetchedAt } : {}),
      ...(this.lastError ? { lastError: this.lastError } : {}),
    };
  }

  private canAttempt(): boolean {
    return this.opts.now() - this.lastAttempt >= this.opts.minRefreshIntervalMs;
  }

  async keys(): Promise<KeySet | JwtStatus> {
    const now = this.opts.now();
    if (!this.current) {
      if (this.inflight || this.canAttempt()) await this.refresh('initial');
    } else if (
      now - this.current.fetchedAt >= this.opts.cacheDurationMs &&
      (this.inflight || this.canAttempt())
    ) {
      await this.refresh('expired');
    }
    return this.current?.set ?? 'JwksFetchFail';
  }

  async refreshForUnknownKid(kid: string): Promise<boolean> {
    if (this.current?.set.hasKid(kid)) return false;
    if (!this.inflight && !this.canAttempt()) return false;
    await this.refresh('unknown-kid');
    return true;
  }

  /** Fetches now (joining a fetch already running). A failure keeps the last good keys and is reported. */
  refresh(reason: JwksEvent['reason']): Promise<void> {
    if (this.inflight) return this.inflight;
    this.lastAttempt = this.opts.now();
    const { provider, uri } = this.opts;
    this.inflight = (async () => {
      try {
        const text = await this.opts.fetch(uri, { timeoutMs: this.opts.timeoutMs });
        const parsed = KeySet.parse(text);
        if (typeof parsed === 'string') throw new Error(`${uri}: ${parsed}`);
        this.current = { set: parsed, fetchedAt: this.opts.now() };
        this.lastError = undefined;
        this.opts.onEvent?.({ provider, uri, reason, outcome: 'fetched', keys: parsed.keys.length });
      } catch (err) {
        const message = (err as Error).message || String(err);
        this.lastError = { at: this.opts.now(), message };
        this.opts.onEvent?.({
          provider,
          uri,
          reason,
          outcome: 'failed',
          error: message,
          keptPreviousKeys: this.current !== undefined,
        });
      } finally {
        this.inflight = undefined;
      }
    })();
    return this.inflight;
  }
}
