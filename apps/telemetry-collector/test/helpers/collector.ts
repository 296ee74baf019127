import { createLogger } from '@mizzen/runtime';
import { Collector, type CollectorOptions } from '../../src/collector.js';

export interface Running {
  collector: Collector;
  /** Base URL of the query API and dashboard. */
  api: string;
  /** Base URL of the OTLP/HTTP receiver. */
  otlp: string;
  grpcPort: number;
  stop(): Promise<void>;
}

/** A real collector on free ports, in this process. Scrapes only on request unless `manualScrape: false`. */
export async function startCollector(overrides: Partial<CollectorOptions> = {}): Promise<Running> {
  const collector = new Collector({
    host: '127.0.0.1',
    httpPort: 0,
    otlpHttpPort: 0,
    otlpGrpcPort: 0,
    pilotUrl: undefined,
    scrapeIntervalMs: 15_000,
    scrapeTimeoutMs: 2000,
    staticTargets: [],
    retentionMs: 3_600_000,
    maxSpans: 10_000,
    maxLogs: 10_000,
    maxMetricPoints: 10_000,
    maxIntervals: 10_000,
    maxRequestBytes: 1024 * 1024,
    maxBatchItems: 1000,
    logger: createLogger('telemetry-collector-test', { level: 'silent' }),
    manualScrape: true,
    ...overrides,
  });
  const ports = await collector.start();
  return {
    collector,
    api: `http://127.0.0.1:${ports.httpPort}`,
    otlp: `http://127.0.0.1:${ports.otlpHttpPort}`,
    grpcPort: ports.otlpGrpcPort,
    stop: () => collector.stop(),
  };
}

export async function getJson<T = Record<string, unknown>>(url: string): Promise<T> {
  const res = await fetch(url);
  const body = await res.text();
  if (!res.ok) throw new Error(`GET ${url}: HTTP ${res.status} ${body}`);
  return JSON.parse(body) as T;
}

/** Polls `check` until it returns a value (not undefined) or the deadline passes. */
export async function eventually<T>(
  check: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 5000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
