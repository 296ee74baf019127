import { createLogger } from '@mizzen/runtime';
import { AdsServer } from '@mizzen/xds';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DEFAULT_MESH_CONFIG } from '../src/networking/mesh-config.js';
import { PushController } from '../src/xds/push-controller.js';

/**
 * Istio's push debouncing (PILOT_DEBOUNCE_AFTER / PILOT_DEBOUNCE_MAX): a burst
 * of changes is one push carrying every reason, and a change stream that never
 * goes quiet still pushes at least every maxDelay. Fake timers drive the clock.
 */
describe('push debouncing', () => {
  let push: PushController;

  beforeEach(() => {
    vi.useFakeTimers();
    push = new PushController({
      ads: new AdsServer({ logger: createLogger('test', { level: 'silent' }) }),
      mesh: DEFAULT_MESH_CONFIG,
      logger: createLogger('test', { level: 'silent' }),
      debounceMs: 100,
      maxDelayMs: 1000,
    });
  });

  afterEach(() => {
    push.stop();
    vi.useRealTimers();
  });

  it('turns a burst of changes into one push after a quiet period, with every reason', () => {
    const start = push.pushContext().version;
    push.setConfig([]);
    vi.advanceTimersByTime(50);
    push.requestPush('registry changed');
    vi.advanceTimersByTime(50);
    push.setRootCert('-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n');
    vi.advanceTimersByTime(99);
    expect(push.lastPush()).toBeUndefined();
    vi.advanceTimersByTime(1);
    expect(push.lastPush()).toMatchObject({
      version: start + 1,
      reason: 'config changed, registry changed, root certificate changed',
    });
    // Quiet afterwards: nothing more is pushed.
    vi.advanceTimersByTime(5000);
    expect(push.pushContext().version).toBe(start + 1);
  });

  it('still pushes every maxDelay while changes never stop coming', () => {
    const start = push.pushContext().version;
    const versions: number[] = [];
    // A change every 50 ms for 2.5 s: never quiet for the 100 ms debounce.
    for (let t = 0; t < 2500; t += 50) {
      push.requestPush(`change at ${t} ms`);
      vi.advanceTimersByTime(50);
      versions.push(push.pushContext().version);
    }
    const pushes = new Set(versions).size - (versions[0] === start ? 1 : 0);
    expect(pushes).toBe(2); // at 1000 ms and at 2000 ms, not 50 pushes and not none
    expect(push.lastPush()?.reason).toContain('change at 1000 ms');
    vi.advanceTimersByTime(100);
    expect(push.pushContext().version).toBe(start + 3); // the tail of the stream, once it went quiet
  });

  it('pushes at once when asked (startup), cancelling the pending debounce', () => {
    const start = push.pushContext().version;
    push.requestPush('registry changed');
    push.pushNow('startup');
    expect(push.lastPush()).toMatchObject({ version: start + 1, reason: 'registry changed, startup' });
    vi.advanceTimersByTime(1000);
    expect(push.pushContext().version).toBe(start + 1);
  });
});
