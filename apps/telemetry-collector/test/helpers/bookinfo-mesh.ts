import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Histogram, Registry } from 'prom-client';
import { BOOKINFO, labelsOf, type Peer, syncEntry, type Traffic } from './istio.js';
import { closeServer } from './servers.js';

/** Istio's default request-duration buckets (milliseconds). */
const DURATION_BUCKETS = [
  0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000,
  3600000,
];
const BYTE_BUCKETS = [1, 10, 100, 1000, 10000, 100000, 1000000];
const LABELS = Object.keys(
  labelsOf({ reporter: 'source', source: 'unknown', destination: 'unknown', service: 'x', code: '200' }),
);

/**
 * One proxy's /stats/prometheus, exposed by prom-client with Istio's metric
 * names, labels and buckets: what a Mizzen sidecar serves on 15020.
 */
export class SimulatedProxy {
  readonly registry = new Registry();
  private readonly requests = new Counter({
    name: 'istio_requests_total',
    help: 'requests',
    labelNames: LABELS,
    registers: [this.registry],
  });
  private readonly duration = new Histogram({
    name: 'istio_request_duration_milliseconds',
    help: 'duration',
    labelNames: LABELS,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly requestBytes = new Histogram({
    name: 'istio_request_bytes',
    help: 'request size',
    labelNames: LABELS,
    buckets: BYTE_BUCKETS,
    registers: [this.registry],
  });
  private readonly responseBytes = new Histogram({
    name: 'istio_response_bytes',
    help: 'response size',
    labelNames: LABELS,
    buckets: BYTE_BUCKETS,
    registers: [this.registry],
  });
  private server?: http.Server;
  port = 0;

  constructor(
    readonly peer: Peer,
    readonly type: 'sidecar' | 'router' = 'sidecar',
  ) {}

  record(t: Traffic, durationMs: number, n = 1): void {
    const labels = labelsOf(t);
    this.requests.inc(labels, n);
    for (let i = 0; i < n; i++) {
      this.duration.observe(labels, durationMs);
      this.requestBytes.observe(labels, 300);
      this.responseBytes.observe(labels, 4000);
    }
  }

  async listen(): Promise<void> {
    this.server = http.createServer(async (_req, res) => {
      const text = await this.registry.metrics();
      res.writeHead(200, { 'content-type': this.registry.contentType });
      res.end(text);
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
  }

  syncEntry() {
    return syncEntry(this.peer, this.port, this.type);
  }

  async close(): Promise<void> {
    if (this.server) await closeServer(this.server);
  }
}

/**
 * Bookinfo traffic as both proxies of each hop report it, including a
 * fault-injected abort on productpage → details (seen only by productpage's
 * proxy, as Istio's fault filter runs on the client side).
 */
export class BookinfoMesh {
  readonly proxies = {
    ingress: new SimulatedProxy(BOOKINFO.ingress, 'router'),
    productpage: new SimulatedProxy(BOOKINFO.productpage),
    details: new SimulatedProxy(BOOKINFO.details),
    reviewsV1: new SimulatedProxy(BOOKINFO.reviewsV1),
    reviewsV2: new SimulatedProxy(BOOKINFO.reviewsV2),
    reviewsV3: new SimulatedProxy(BOOKINFO.reviewsV3),
    ratings: new SimulatedProxy(BOOKINFO.ratings),
  };
  private timer?: NodeJS.Timeout;
  private tickCount = 0;

  async start(tickMs = 100): Promise<void> {
    for (const p of Object.values(this.proxies)) await p.listen();
    this.timer = setInterval(() => this.tick(), tickMs);
  }

  /** Both reports of one hop: the client's proxy (source) and the server's (destination). */
  private hop(
    from: SimulatedProxy,
    to: SimulatedProxy,
    service: string,
    code: string,
    ms: number,
    n = 1,
  ): void {
    const t: Traffic = { reporter: 'source', source: from.peer, destination: to.peer, service, code };
    from.record(t, ms + 1, n);
    to.record({ ...t, reporter: 'destination', security: 'mutual_tls' }, ms, n);
  }

  tick(): void {
    const p = this.proxies;
    this.tickCount++;
    this.hop(p.ingress, p.productpage, 'productpage', '200', 42, 3);
    // Half the calls to details are aborted by fault injection before they leave productpage.
    this.hop(p.productpage, p.details, 'details', '200', 4, 1);
    p.productpage.record(
      {
        reporter: 'source',
        source: p.productpage.peer,
        destination: 'unknown',
        service: 'details',
        code: '503',
        flags: 'FI',
      },
      0.2,
      2,
    );
    const reviews = [p.reviewsV1, p.reviewsV2, p.reviewsV3][this.tickCount % 3]!;
    this.hop(p.productpage, reviews, 'reviews', '200', 22, 3);
    if (reviews !== p.reviewsV1) this.hop(reviews, p.ratings, 'ratings', '200', 3, 3);
  }

  syncz() {
    return Object.values(this.proxies).map((p) => p.syncEntry());
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await Promise.all(Object.values(this.proxies).map((p) => p.close()));
  }
}
