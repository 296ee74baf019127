import { setTimeout as sleep } from 'node:timers/promises';

export interface LoadResult {
  sent: number;
  failed: number;
  failures: string[];
}

/**
 * Steady load for "under load" tests: `concurrency` workers send requests
 * back to back until `stop()` — bounded by `maxRequests` and `maxMs` so a
 * test can never spin forever.
 */
export function steadyLoad(
  send: () => Promise<{ ok: boolean; detail: string }>,
  opts: { concurrency?: number; maxRequests?: number; maxMs?: number; pauseMs?: number } = {},
): { stop: () => Promise<LoadResult>; sent: () => number } {
  const result: LoadResult = { sent: 0, failed: 0, failures: [] };
  const deadline = Date.now() + (opts.maxMs ?? 60_000);
  const max = opts.maxRequests ?? 100_000;
  let stopping = false;
  const worker = async () => {
    while (!stopping && result.sent < max && Date.now() < deadline) {
      result.sent++;
      try {
        const r = await send();
        if (!r.ok) {
          result.failed++;
          if (result.failures.length < 20) result.failures.push(r.detail);
        }
      } catch (err) {
        result.failed++;
        if (result.failures.length < 20) result.failures.push((err as Error).message);
      }
      if (opts.pauseMs) await sleep(opts.pauseMs);
    }
  };
  const workers = Array.from({ length: opts.concurrency ?? 4 }, () => worker());
  return {
    sent: () => result.sent,
    stop: async () => {
      stopping = true;
      await Promise.all(workers);
      return result;
    },
  };
}

/** Polls `check` until it returns true (or throws on timeout with the last reason). */
export async function eventually(
  what: string,
  check: () => Promise<boolean | string>,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown = 'never checked';
  while (Date.now() < deadline) {
    try {
      const r = await check();
      if (r === true) return;
      last = r;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}: ${String(last)}`);
}
