import { componentTracer, type Logger, withSpan } from '@mizzen/runtime';
import { type Dispatcher, request } from 'undici';
import { intervalBetween, snapshotOf, type TargetSnapshot } from './mesh/deltas.js';
import type { KnownProxy } from './mesh/graph.js';
import type { IntervalRecord } from './mesh/model.js';
import type { CollectorMetrics } from './metrics.js';
import { type PilotClient, type PilotProxy, statsUrl } from './pilot.js';
import { parseExposition } from './prometheus/parse.js';
import type { Storage } from './store/storage.js';

const tracer = componentTracer('telemetry-collector');

export interface StaticTarget {
  name: string;
  url: string;
}

export interface ScrapeTarget {
  id: string;
  url?: string;
  workload: string;
  namespace: string;
  kind: PilotProxy['kind'] | 'static';
}

export interface TargetStatus extends ScrapeTarget {
  /** up: last scrape worked; down: it failed; pending: no stats port yet (not scrapeable). */
  state: 'up' | 'down' | 'pending';
  lastScrapeMs?: number;
  lastSuccessMs?: number;
  durationMs?: number;
  samples?: number;
  error?: string;
}

export interface ScraperOptions {
  clock: () => number;
  intervalMs: number;
  timeoutMs: number;
  /** When false, rounds run only through {@link Scraper.scrapeNow}. */
  auto: boolean;
  pilot?: PilotClient;
  staticTargets: StaticTarget[];
  storage: Storage;
  metrics: CollectorMetrics;
  logger: Logger;
  dispatcher: Dispatcher;
  maxBodyBytes?: number;
  concurrency?: number;
}

/**
 * Scrapes every proxy's `/stats/prometheus` each interval (targets: pilot's
 * `/debug/syncz` plus static ones), turns each pair of successive successful
 * scrapes of a proxy into an interval record and stores it. Every scrape is
 * bounded by the timeout; a target that hangs or fails only marks itself
 * down, and its next success pairs with its last success.
 */
export class Scraper {
  private readonly snapshots = new Map<string, TargetSnapshot>();
  private readonly status = new Map<string, TargetStatus>();
  private proxies: PilotProxy[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly log: Logger;

  constructor(private readonly options: ScraperOptions) {
    this.log = options.logger;
  }

  start(): void {
    if (!this.options.auto) return;
    const loop = () => {
      if (this.stopped) return;
      void this.scrapeNow().finally(() => {
        if (!this.stopped) this.timer = setTimeout(loop, this.options.intervalMs);
      });
    };
    loop();
  }

  stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    return this.running;
  }

  /** One scrape round now, after any round in progress. */
  scrapeNow(): Promise<void> {
    this.running = this.running
      .then(() => this.round())
      .catch((err) => {
        this.log.error({ err: (err as Error).message }, 'scrape round failed');
      });
    return this.running;
  }

  statuses(): TargetStatus[] {
    return [...this.status.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  /** Workloads known to run a proxy (from pilot), for the graph's reporter rule. */
  knownProxies(): KnownProxy[] {
    return this.proxies
      .filter((p) => p.kind === 'sidecar' || p.kind === 'ingress' || p.kind === 'egress')
      .map((p) => ({ namespace: p.namespace, workload: p.workload, kind: p.kind as KnownProxy['kind'] }));
  }

  pilotProxies(): PilotProxy[] {
    return this.proxies;
  }

  private async targets(): Promise<ScrapeTarget[]> {
    const out: ScrapeTarget[] = this.options.staticTargets.map((t) => ({
      id: t.name,
      url: t.url,
      workload: t.name,
      namespace: '',
      kind: 'static',
    }));
    if (this.options.pilot) {
      try {
        this.proxies = await this.options.pilot.proxies();
      } catch (err) {
        // Keep scraping the proxies pilot listed last time.
        this.log.debug({ err: (err as Error).message }, 'pilot unreachable; using the last target list');
      }
      for (const p of this.proxies) {
        if (p.kind === 'grpc') continue; // proxyless clients have no stats endpoint
        out.push({ id: p.id, url: statsUrl(p), workload: p.workload, namespace: p.namespace, kind: p.kind });
      }
    }
    return out;
  }

  private round(): Promise<void> {
    // The collector's own trace (OpenTelemetry, when OTEL_EXPORTER_OTLP_ENDPOINT is set): one span per round.
    return withSpan(tracer, 'collector.scrape', {}, async (span) => {
      const states = await this.roundOnce();
      span.setAttributes({
        'mizzen.scrape.targets_up': states.up,
        'mizzen.scrape.targets_down': states.down,
        'mizzen.scrape.targets_pending': states.pending,
      });
    });
  }

  private async roundOnce(): Promise<{ up: number; down: number; pending: number }> {
    const t = this.options.clock();
    const targets = await this.targets();
    const records: IntervalRecord[] = [];
    const live = new Set(targets.map((x) => x.id));
    for (const id of [...this.status.keys()]) {
      if (!live.has(id)) {
        this.status.delete(id);
        this.snapshots.delete(id);
      }
    }
    const queue = [...targets];
    const worker = async () => {
      for (let target = queue.shift(); target; target = queue.shift()) {
        const record = await this.scrapeOne(target, t);
        if (record) records.push(record);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.concurrency ?? 32, queue.length) }, worker));
    const states = { up: 0, down: 0, pending: 0 };
    for (const s of this.status.values()) states[s.state]++;
    for (const [state, n] of Object.entries(states)) this.options.metrics.scrapeTargets.set({ state }, n);
    records.sort((a, b) => a.target.localeCompare(b.target));
    await this.options.storage.addIntervals(records);
    return states;
  }

  private async scrapeOne(target: ScrapeTarget, t: number): Promise<IntervalRecord | undefined> {
    const previous = this.status.get(target.id);
    // The previous outcome stays visible while this scrape runs.
    const status: TargetStatus = {
      ...target,
      state: previous?.url === target.url ? (previous?.state ?? 'pending') : 'pending',
      lastSuccessMs: previous?.lastSuccessMs,
      lastScrapeMs: previous?.lastScrapeMs,
      samples: previous?.samples,
      error: previous?.error,
    };
    this.status.set(target.id, status);
    if (!target.url) {
      status.state = 'pending';
      status.error = 'no stats port reported by pilot yet (not scrapeable)';
      this.snapshots.delete(target.id);
      return undefined;
    }
    const started = performance.now();
    try {
      const text = await this.fetch(target.url);
      const exposition = parseExposition(text);
      const snapshot = snapshotOf(t, exposition.samples);
      const prev = this.snapshots.get(target.id);
      this.snapshots.set(target.id, snapshot);
      status.state = 'up';
      status.error = undefined;
      status.lastSuccessMs = t;
      status.samples = exposition.samples.length;
      this.options.metrics.scrapes.inc({ result: 'success' });
      return prev && prev.t < t ? intervalBetween(target.id, prev, snapshot) : undefined;
    } catch (err) {
      const e = err as Error;
      const timedOut = e.name === 'TimeoutError' || e.name === 'AbortError';
      status.state = 'down';
      status.error = timedOut ? `no answer within ${this.options.timeoutMs} ms` : e.message;
      this.options.metrics.scrapes.inc({ result: timedOut ? 'timeout' : 'error' });
      if (previous?.state !== 'down') {
        this.log.warn({ target: target.id, url: target.url, err: status.error }, 'scrape failed');
      }
      return undefined;
    } finally {
      status.lastScrapeMs = t;
      const seconds = (performance.now() - started) / 1000;
      status.durationMs = Math.round(seconds * 1000);
      this.options.metrics.scrapeDuration.observe(seconds);
    }
  }

  private async fetch(url: string): Promise<string> {
    const { timeoutMs } = this.options;
    const max = this.options.maxBodyBytes ?? 32 * 1024 * 1024;
    const res = await request(url, {
      dispatcher: this.options.dispatcher,
      headers: { accept: 'text/plain;version=0.0.4;q=1,*/*;q=0.1' },
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
      signal: AbortSignal.timeout(timeoutMs),
    });
    if (res.statusCode !== 200) {
      await res.body.dump();
      throw new Error(`HTTP ${res.statusCode} from ${url}`);
    }
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of res.body) {
      size += (chunk as Buffer).length;
      if (size > max) {
        res.body.destroy();
        throw new Error(`exposition larger than ${max} bytes`);
      }
      chunks.push(chunk as Buffer);
    }
    return Buffer.concat(chunks).toString('utf8');
  }
}
