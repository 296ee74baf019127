import type { CounterRequest, CounterResult, CounterStore } from './counter-store.js';
import { gcraStep } from './gcra.js';

export interface MemoryCounterStoreOptions {
  /** Microseconds since the epoch; defaults to the wall clock. */
  clock?: () => number;
  /** Counters kept at most; the least recently used go first beyond it. */
  maxKeys?: number;
}

const wallClockUs = () => Date.now() * 1000;

/**
 * Counters of one process, for a single proxy or when no REDIS_URL is
 * given: the same GCRA steps and the same all-or-nothing charging as the
 * Redis script, so a policy behaves the same with either.
 */
export class MemoryCounterStore implements CounterStore {
  readonly kind = 'memory';
  private readonly tats = new Map<string, number>();
  private readonly clock: () => number;
  private readonly maxKeys: number;
  private operations = 0;

  constructor(options: MemoryCounterStoreOptions = {}) {
    this.clock = options.clock ?? wallClockUs;
    this.maxKeys = options.maxKeys ?? 100_000;
  }

  async hit(counters: readonly CounterRequest[], nowUs = this.clock()): Promise<CounterResult[]> {
    const steps = counters.map((c) => gcraStep(this.tats.get(c.key), nowUs, c.limit));
    const rejected = steps.some((s, i) => !s.allowed && counters[i]!.enforce);
    if (!rejected) {
      steps.forEach((s, i) => {
        if (!s.allowed) return;
        const key = counters[i]!.key;
        // Re-inserting moves the key to the end: the map's order is least recently used first.
        this.tats.delete(key);
        this.tats.set(key, s.newTat);
      });
    }
    if (++this.operations % 1024 === 0 || this.tats.size > this.maxKeys) this.sweep(nowUs);
    return steps.map((s, i) => ({
      allowed: s.allowed,
      limit: counters[i]!.limit.requests,
      remaining: s.remaining,
      resetMs: s.resetMs,
      retryAfterMs: s.retryAfterMs,
    }));
  }

  /** Drops counters that are full again (a TAT in the past counts as no TAT), then the oldest beyond maxKeys. */
  private sweep(nowUs: number): void {
    for (const [key, tat] of this.tats) if (tat <= nowUs) this.tats.delete(key);
    for (const key of this.tats.keys()) {
      if (this.tats.size <= this.maxKeys) break;
      this.tats.delete(key);
    }
  }

  /** Counters currently held (tests). */
  size(): number {
    return this.tats.size;
  }

  isUp(): boolean {
    return true;
  }

  async close(): Promise<void> {
    this.tats.clear();
  }
}
