import type { RateLimit } from './units.js';

/** One counter a request is checked against. */
export interface CounterRequest {
  /** The counter's identity (see `counterKey`); every replica that builds the same key shares the counter. */
  readonly key: string;
  readonly limit: RateLimit;
  /** False for shadow rules: the counter is checked and reported but never rejects the request. */
  readonly enforce: boolean;
}

/** What one counter said about the request. */
export interface CounterResult {
  readonly allowed: boolean;
  readonly limit: number;
  readonly remaining: number;
  /** Milliseconds until the counter is full again. */
  readonly resetMs: number;
  /** Milliseconds until a request would be allowed; 0 when this one was. */
  readonly retryAfterMs: number;
}

/**
 * Where counters live. `hit` checks one request against all its counters
 * atomically: when an enforced counter rejects it, none is charged;
 * otherwise every counter that had room is. Results come in request order.
 * It rejects with `CounterStoreError` when the store cannot answer in time.
 */
export interface CounterStore {
  readonly kind: 'memory' | 'redis';
  /** `nowUs` pins the clock (tests); by default the store's own clock decides. */
  hit(counters: readonly CounterRequest[], nowUs?: number): Promise<CounterResult[]>;
  /** False while the store cannot be used (Redis down); memory is always up. */
  isUp(): boolean;
  close(): Promise<void>;
}

/** The store did not answer (unreachable, timed out, script error): the caller fails open or closed. */
export class CounterStoreError extends Error {
  constructor(
    message: string,
    readonly reason: 'unavailable' | 'timeout' | 'error',
  ) {
    super(message);
    this.name = 'CounterStoreError';
  }
}
