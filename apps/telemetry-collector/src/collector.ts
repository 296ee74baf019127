import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { Logger } from '@mizzen/runtime';
import Fastify, { type FastifyInstance } from 'fastify';
import { Agent } from 'undici';
import { registerApi } from './api.js';
import type { Flags } from './flags.js';
import { type CollectorMetrics, createCollectorMetrics } from './metrics.js';
import { OtlpGrpcServer } from './otlp/grpc.js';
import { createOtlpHttpServer } from './otlp/http.js';
import { Ingest } from './otlp/ingest.js';
import { PilotClient } from './pilot.js';
import { Scraper } from './scrape.js';
import { Storage } from './store/storage.js';

export type CollectorOptions = Omit<Flags, 'logLevel'> & {
  logger: Logger;
  /** Milliseconds since the epoch; tests pass a controllable clock. */
  clock?: () => number;
  /** When true, scrapes happen only through {@link Collector.scrapeNow}. */
  manualScrape?: boolean;
};

export interface BoundPorts {
  httpPort: number;
  otlpHttpPort: number;
  otlpGrpcPort: number;
}

export interface Health {
  status: 'ok' | 'degraded';
  reasons: string[];
  storage: ReturnType<Storage['health']>;
  pilot: ReturnType<PilotClient['status']> | null;
  scrape: { intervalMs: number; targets: number; up: number; down: number; pending: number };
  uptimeSeconds: number;
}

/** The built dashboard: dist/dashboard next to this file's package, from src/ (tests) or dist/. */
function defaultDashboardDir(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'dashboard');
}

/**
 * The telemetry collector: OTLP receivers (HTTP and gRPC), the proxy
 * scraper, the store (memory, or Redis shared with other collectors), and
 * the query API with the dashboard.
 */
export class Collector {
  readonly metrics: CollectorMetrics = createCollectorMetrics();
  readonly storage: Storage;
  readonly scraper: Scraper;
  private readonly pilot?: PilotClient;
  private readonly http: FastifyInstance;
  private readonly otlpHttp: FastifyInstance;
  private readonly otlpGrpc: OtlpGrpcServer;
  private readonly dispatcher: Agent;
  private readonly clock: () => number;
  private readonly log: Logger;
  private readonly startedAt = Date.now();
  private statsTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: CollectorOptions) {
    this.log = options.logger;
    this.clock = options.clock ?? Date.now;
    this.dispatcher = new Agent({
      connect: { timeout: options.scrapeTimeoutMs },
      keepAliveTimeout: Math.max(options.scrapeIntervalMs * 2, 4000),
      connections: 8,
    });
    this.storage = new Storage({
      limits: {
        retentionMs: options.retentionMs,
        maxSpans: options.maxSpans,
        maxLogs: options.maxLogs,
        maxMetricPoints: options.maxMetricPoints,
        maxIntervals: options.maxIntervals,
      },
      logger: this.log,
      clock: this.clock,
      redisUrl: options.redisUrl,
      leaseMs: Math.max(3 * options.scrapeIntervalMs, 5000),
      onRedisError: (op) => this.metrics.redisErrors.inc({ op }),
    });
    if (options.pilotUrl) {
      this.pilot = new PilotClient(
        options.pilotUrl,
        Math.min(2000, options.scrapeTimeoutMs),
        this.dispatcher,
        this.clock,
      );
    }
    this.scraper = new Scraper({
      clock: this.clock,
      intervalMs: options.scrapeIntervalMs,
      timeoutMs: options.scrapeTimeoutMs,
      auto: !options.manualScrape,
      pilot: this.pilot,
      staticTargets: options.staticTargets,
      storage: this.storage,
      metrics: this.metrics,
      logger: this.log,
      dispatcher: this.dispatcher,
    });
    const ingest = new Ingest(this.storage, this.metrics, options.maxBatchItems);
    this.otlpHttp = createOtlpHttpServer({
      ingest,
      metrics: this.metrics,
      logger: this.log,
      maxRequestBytes: options.maxRequestBytes,
    });
    this.otlpGrpc = new OtlpGrpcServer({
      ingest,
      metrics: this.metrics,
      logger: this.log,
      maxRequestBytes: options.maxRequestBytes,
    });
    this.http = this.createHttp();
  }

  private createHttp(): FastifyInstance {
    const app = Fastify({ logger: false, requestTimeout: 30_000 });
    app.addHook('onResponse', async (req, reply) => {
      const route = req.routeOptions.url ?? 'static';
      if (route.startsWith('/api') || route === '/healthz' || route === '/metrics') {
        this.metrics.apiRequests.inc({ route, code: String(reply.statusCode) });
      }
    });
    app.setErrorHandler((err: Error & { statusCode?: number }, _req, reply) => {
      const status = err.statusCode && err.statusCode < 500 ? err.statusCode : 500;
      if (status === 500) this.log.error({ err: err.message }, 'query failed');
      return reply
        .code(status)
        .send({ error: status === 500 ? `internal error: ${err.message}` : err.message });
    });
    app.get('/healthz', async () => this.health());
    app.get('/metrics', async (_req, reply) => {
      this.updateGauges();
      reply.header('content-type', this.metrics.registry.contentType);
      return this.metrics.registry.metrics();
    });
    registerApi(app, {
      storage: this.storage,
      scraper: this.scraper,
      pilot: this.pilot,
      clock: this.clock,
      retentionMs: this.options.retentionMs,
      scrapeIntervalMs: this.options.scrapeIntervalMs,
    });
    app.all('/api/*', async (req, reply) =>
      reply.code(404).send({ error: `no such endpoint: ${req.method} ${req.url}` }),
    );
    const dir = this.options.dashboardDir ?? defaultDashboardDir();
    if (fs.existsSync(path.join(dir, 'index.html'))) {
      void app.register(fastifyStatic, {
        root: dir,
        prefix: '/',
        index: 'index.html',
        setHeaders: (res, file) => {
          res.header(
            'cache-control',
            file.includes(`${path.sep}assets${path.sep}`)
              ? 'public, max-age=31536000, immutable'
              : 'no-cache',
          );
        },
      });
    } else {
      app.get('/', async (_req, reply) =>
        reply
          .code(503)
          .type('text/plain')
          .send(
            `dashboard not built (${dir} has no index.html): run npm run build in apps/telemetry-collector\n`,
          ),
      );
    }
    return app;
  }

  health(): Health {
    const storage = this.storage.health();
    const pilot = this.pilot?.status() ?? null;
    const reasons: string[] = [];
    if (!storage.ok && storage.reason) reasons.push(storage.reason);
    if (pilot && !pilot.reachable && pilot.error) reasons.push(pilot.error);
    const statuses = this.scraper.statuses();
    return {
      status: reasons.length ? 'degraded' : 'ok',
      reasons,
      storage,
      pilot,
      scrape: {
        intervalMs: this.options.scrapeIntervalMs,
        targets: statuses.length,
        up: statuses.filter((s) => s.state === 'up').length,
        down: statuses.filter((s) => s.state === 'down').length,
        pending: statuses.filter((s) => s.state === 'pending').length,
      },
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
    };
  }

  private updateGauges(): void {
    const counts = this.storage.memory.counts();
    this.metrics.stored.set({ kind: 'spans' }, counts.spans);
    this.metrics.stored.set({ kind: 'traces' }, counts.traces);
    this.metrics.stored.set({ kind: 'logs' }, counts.logs);
    this.metrics.stored.set({ kind: 'metric_points' }, counts.metricPoints);
    this.metrics.stored.set({ kind: 'intervals' }, counts.intervals);
    if (this.storage.redis) this.metrics.redisUp.set(this.storage.redis.connected ? 1 : 0);
  }

  /** One scrape round now (also what the timer runs). */
  scrapeNow(): Promise<void> {
    return this.scraper.scrapeNow();
  }

  async start(): Promise<BoundPorts> {
    this.storage.start();
    const { host } = this.options;
    try {
      await this.otlpHttp.listen({ port: this.options.otlpHttpPort, host });
      const otlpGrpcPort = await this.otlpGrpc.listen(this.options.otlpGrpcPort, host);
      await this.http.listen({ port: this.options.httpPort, host });
      this.scraper.start();
      this.statsTimer = setInterval(() => this.updateGauges(), 5000);
      this.statsTimer.unref();
      const ports = {
        httpPort: portOf(this.http),
        otlpHttpPort: portOf(this.otlpHttp),
        otlpGrpcPort,
      };
      this.log.info(
        {
          ...ports,
          storage: this.storage.redis ? `redis ${this.storage.redis.where()}` : 'memory',
          pilot: this.options.pilotUrl ?? null,
          scrapeIntervalMs: this.options.scrapeIntervalMs,
        },
        'telemetry collector ready',
      );
      return ports;
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  async stop(): Promise<void> {
    if (this.statsTimer) clearInterval(this.statsTimer);
    await this.scraper.stop();
    await Promise.allSettled([this.http.close(), this.otlpHttp.close(), this.otlpGrpc.close()]);
    await this.storage.close();
    await this.dispatcher.close().catch(() => undefined);
  }
}

function portOf(app: FastifyInstance): number {
  const address = app.server.address();
  return typeof address === 'object' && address ? address.port : 0;
}
