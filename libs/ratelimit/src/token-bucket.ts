/**
 * Envoy's token bucket (`envoy.type.v3.TokenBucket`), as the local rate
 * limit filter uses it: it starts full with `maxTokens`, gains
 * `tokensPerFill` every `fillIntervalMs` (whole intervals counted from its
 * creation, as Envoy's fill timer does) up to `maxTokens`, and each request
 * takes one token. Refills are computed when the bucket is used, so an idle
 * bucket costs no timer.
 */
export interface TokenBucketSpec {
  readonly maxTokens: number;
  readonly tokensPerFill: number;
  readonly fillIntervalMs: number;
}

export class TokenBucket {
  private tokens: number;
  private lastFill: number;

  constructor(
    readonly spec: TokenBucketSpec,
    private readonly clock: () => number = Date.now,
  ) {
    this.tokens = spec.maxTokens;
    this.lastFill = clock();
  }

  /** Takes a token when there is one. */
  consume(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens--;
    return true;
  }

  /** Tokens left now. */
  remaining(): number {
    this.refill();
    return this.tokens;
  }

  /** Milliseconds until the next fill (Envoy's X-RateLimit-Reset). */
  msUntilFill(): number {
    this.refill();
    return Math.max(0, this.lastFill + this.spec.fillIntervalMs - this.clock());
  }

  private refill(): void {
    const now = this.clock();
    const fills = Math.floor((now - this.lastFill) / this.spec.fillIntervalMs);
    if (fills <= 0) return;
    this.tokens = Math.min(this.spec.maxTokens, this.tokens + fills * this.spec.tokensPerFill);
    this.lastFill += fills * this.spec.fillIntervalMs;
  }
}
