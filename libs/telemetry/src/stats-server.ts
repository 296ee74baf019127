import type { Logger } from '@mizzen/runtime';
import Fastify, { type FastifyInstance } from 'fastify';
import { Counter, Gauge, type Registry } from 'prom-client';
import { request } from 'undici';
import { withoutFamilies } from './exposition.js';

/**
 * The proxy's Prometheus endpoint (port 15020 in a pod): `/stats/prometheus`
 * serves Istio's metrics from the proxy's registry and, with Istio's metrics
 * merging, the application's own metrics scraped from its endpoint
 * (`prometheus.io/scrape|port|path`) appended to them. A family the
 * application exposes under a name the proxy already uses is left out, so
 * the whole stays one valid exposition.
 */

export interface StatsServerOptions {
  registry: Registry;
  host: string;
  port: number;
  /** The application's metrics URL (`http://127.0.0.1:PORT/PATH`), when metrics merging is on. */
  appMetricsUrl?: string;
  /** Bound on the application scrape. */
  appTimeoutMs?: number;
  logger?: Logger;
  /**
   * Kubelet's probes rewritten by the injector (`GET /app-health/<container>/livez|readyz|startupz`):
   * runs the application's own probe and answers with its verdict. Without it, those paths are 404.
   */
  appProbe?: AppProbe;
}

/** Runs the application probe registered at a path; `status` is what kubelet gets (200, 503, 404). */
export type AppProbe = (path: string) => Promise<{ status: number; body: string }>;

export class StatsServer {
  private readonly app: FastifyInstance;
  private readonly scrapes: Counter;
  private readonly scrapeFailures: Counter;
  private lastAppError?: string;

  constructor(private readonly options: StatsServerOptions) {
    const registry = options.registry;
    const start = new Gauge({
      name: 'process_start_time_seconds',
      help: 'Start time of the process since unix epoch in seconds.',
      registers: [registry],
    });
    start.set(Math.round(Date.now() / 1000 - process.uptime()));
    this.scrapes = new Counter({
      name: 'istio_agent_scrapes_total',
      help: 'Scrapes of the application metrics endpoint (metrics merging).',
      registers: [registry],
    });
    this.scrapeFailures = new Counter({
      name: 'istio_agent_scrape_failures_total',
      help: 'Failed scrapes of the application metrics endpoint.',
      registers: [registry],
    });
    this.app = Fastify({ logger: false });
    this.app.get('/stats/prometheus', async (_req, reply) => {
      // The application first, so this scrape's own counters already include it.
      const appText = options.appMetricsUrl ? await this.scrapeApp(options.appMetricsUrl) : undefined;
      const own = await registry.metrics();
      reply.header('content-type', 'text/plain; version=0.0.4; charset=utf-8');
      return appText === undefined ? own : own + this.merge(appText, own);
    });
    this.app.get('/healthz/ready', async () => 'ok');
    const probe = options.appProbe;
    if (probe) {
      this.app.get('/app-health/*', async (req, reply) => {
        const result = await probe(req.url);
        reply.code(result.status).header('content-type', 'text/plain; charset=utf-8');
        return result.body;
      });
    }
  }

  /** The application's exposition without the families the proxy already serves. */
  private merge(appText: string, own: string): string {
    const ours = new Set([...own.matchAll(/^# TYPE (\S+)/gm)].map((m) => m[1]!));
    const { text: merged, dropped } = withoutFamilies(appText, ours);
    if (dropped.length)
      this.options.logger?.debug({ dropped }, "application metrics with the proxy's names were left out");
    return merged ? `\n${merged}` : '';
  }

  /** The application's exposition; undefined when the scrape fails (the proxy's metrics are served alone). */
  private async scrapeApp(url: string): Promise<string | undefined> {
    const timeout = this.options.appTimeoutMs ?? 5000;
    this.scrapes.inc();
    try {
      const res = await request(url, {
        headersTimeout: timeout,
        bodyTimeout: timeout,
        signal: AbortSignal.timeout(timeout),
        headers: { accept: 'text/plain;version=0.0.4' },
      });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}`);
      this.lastAppError = undefined;
      return text;
    } catch (err) {
      const message = (err as Error).message;
      if (this.lastAppError !== message)
        this.options.logger?.warn({ url, err: message }, 'cannot scrape the application metrics endpoint');
      this.lastAppError = message;
      this.scrapeFailures.inc();
      return undefined;
    }
  }

  /** Listens; resolves with the bound port. */
  async start(): Promise<number> {
    await this.app.listen({ host: this.options.host, port: this.options.port });
    const a = this.app.server.address();
    return typeof a === 'object' && a ? a.port : this.options.port;
  }

  async close(): Promise<void> {
    await this.app.close();
  }
}
