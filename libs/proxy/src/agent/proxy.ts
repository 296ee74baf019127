import { memoryRateLimitServices, type RateLimitServices } from '@mizzen/ratelimit';
import { componentTracer, type Logger, withSpan } from '@mizzen/runtime';
import { AdsClient, shortType, TypeUrl, type XdsNode } from '@mizzen/xds';
import type { FastifyInstance } from 'fastify';
import { createAdminServer, createHealthServer } from '../admin/admin-server.js';
import { Router } from '../http/router.js';
import { type CaptureMode, ListenerManager } from '../listeners/listener-manager.js';
import { encodePeerHeaders } from '../observe/peer-metadata.js';
import type { ProxyObserver } from '../observe/records.js';
import { encodeExchangeHeader } from '../observe/tcp-metadata-exchange.js';
import { RouteStore } from '../routes/route-store.js';
import { type CertManagerOptions, WorkloadCertManager } from '../security/cert-manager.js';
import { SecretStore } from '../security/secret-store.js';
import { ClusterManager } from '../upstream/cluster-manager.js';
import { ConnectionPools } from '../upstream/connection-pools.js';
import { GrpcSideCalls } from '../upstream/grpc-side-calls.js';
import { AppliedConfig } from './applied-config.js';
import { ConfigApplier } from './config-applier.js';

export interface ProxyOptions {
  node: XdsNode;
  /** host:port of pilot's ADS server. */
  pilot: string;
  logger: Logger;
  /** Address the admin and health servers bind. */
  adminHost: string;
  adminPort: number;
  healthPort: number;
  captureMode?: CaptureMode;
  /** Secrets this process provides itself (the sidecar's workload certificate); one is made when absent. */
  secrets?: SecretStore;
  /** Get and rotate a workload certificate from citadel (mutual TLS in the mesh). */
  certificates?: Omit<CertManagerOptions, 'secrets' | 'logger'>;
  /** Telemetry (metrics, access logs, tracing) watching every request and connection. */
  observer?: ProxyObserver;
  /**
   * Counters and metrics of the rate limit filters (RateLimitPolicy): Redis
   * shared by every replica, or memory. Memory without metrics when absent.
   * The proxy closes the store when it stops.
   */
  rateLimits?: RateLimitServices;
  /** Reconnect back-off towards pilot. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * The data plane of one sidecar or gateway: an ADS client feeding clusters,
 * endpoints, listeners and routes into the running proxy, plus the admin
 * (15000) and health (15021) servers. It keeps serving its last good config
 * while pilot is away, and rejects (NACKs) config it cannot apply.
 */
export class MeshProxy {
  readonly ads: AdsClient;
  private readonly pools = new ConnectionPools();
  /** TLS material by name: the workload certificate (set locally) and what pilot sends over SDS. */
  readonly secrets: SecretStore;
  private readonly clusters: ClusterManager;
  /** Its own gRPC calls to clusters (external authorizers), one channel per host. */
  private readonly grpc: GrpcSideCalls;
  private readonly routes = new RouteStore();
  private readonly listeners: ListenerManager;
  private readonly applied = new AppliedConfig();
  private readonly admin: FastifyInstance;
  private readonly health: FastifyInstance;
  private readonly log: Logger;

  private readonly applier: ConfigApplier;
  private readonly certs?: WorkloadCertManager;
  private readonly rateLimits: RateLimitServices;

  constructor(private readonly options: ProxyOptions) {
    this.log = options.logger;
    this.secrets = options.secrets ?? new SecretStore();
    // Certificate files this proxy reads itself: a change that breaks them closes their servers, and says why.
    this.secrets.onChange((name) => {
      const problem = this.secrets.problem(name);
      if (problem)
        this.log.warn({ secret: name, reason: problem }, 'TLS servers using these files stay closed');
    });
    this.certs = options.certificates
      ? new WorkloadCertManager({ ...options.certificates, secrets: this.secrets, logger: this.log })
      : undefined;
    this.clusters = new ClusterManager(this.pools, this.secrets);
    this.rateLimits = options.rateLimits ?? memoryRateLimitServices();
    const router = new Router(this.clusters, this.pools, encodePeerHeaders(options.node));
    this.grpc = new GrpcSideCalls(this.clusters);
    this.listeners = new ListenerManager(
      {
        clusters: this.clusters,
        router,
        grpc: this.grpc,
        routes: this.routes,
        logger: this.log,
        observer: options.observer,
        secrets: this.secrets,
        exchangeHeader: encodeExchangeHeader(options.node),
      },
      this.log,
      options.captureMode,
    );
    this.applier = new ConfigApplier({
      secrets: this.secrets,
      clusters: this.clusters,
      listeners: this.listeners,
      routes: this.routes,
      applied: this.applied,
      subscribe: (typeUrl, names) => this.ads.subscribe(typeUrl, names),
      logger: this.log,
      filterServices: { rateLimits: this.rateLimits, logger: this.log },
    });
    const applier = this.applier;
    // One span per xDS response (a no-op unless the process's Node SDK exports): accepted, or rejected with why.
    const tracer = componentTracer('proxy');
    this.ads = new AdsClient({
      address: options.pilot,
      node: options.node,
      logger: this.log,
      onResources: (typeUrl, resources, version) =>
        withSpan(
          tracer,
          `xds apply ${shortType(typeUrl)}`,
          {
            attributes: {
              'xds.type_url': typeUrl,
              'xds.version': version,
              'xds.resources': resources.length,
              'xds.node': options.node.id,
            },
          },
          () => applier.apply(typeUrl, resources, version),
        ),
      initialBackoffMs: options.initialBackoffMs,
      maxBackoffMs: options.maxBackoffMs,
    });
    const isReady = () => this.isReady();
    this.admin = createAdminServer({
      node: options.node,
      applied: this.applied,
      clusters: this.clusters,
      pools: this.pools,
      listeners: this.listeners,
      ads: this.ads,
      logger: this.log,
      isReady,
      startedAt: new Date(),
      secrets: this.secrets,
      secretNames: () => this.applier.secretNames(),
      certStatus: this.certs ? () => this.certs!.status() : undefined,
    });
    this.health = createHealthServer(isReady);
  }

  /** Starts the admin and health servers and connects to pilot. Resolves with the bound admin ports. */
  async start(): Promise<{ adminPort: number; healthPort: number }> {
    await this.admin.listen({ host: this.options.adminHost, port: this.options.adminPort });
    await this.health.listen({ host: this.options.adminHost, port: this.options.healthPort });
    // The certificate comes in the background: listeners that need it wait (not ready) until it is here.
    if (this.certs) void this.certs.start();
    this.ads.subscribe(TypeUrl.Cluster, '*');
    this.ads.subscribe(TypeUrl.Listener, '*');
    this.ads.start();
    this.log.info(
      { pilot: this.options.pilot, node: this.options.node.id },
      'proxy started; connecting to pilot',
    );
    return { adminPort: portOf(this.admin), healthPort: portOf(this.health) };
  }

  /**
   * Ready (Envoy's LIVE) once clusters and listeners were accepted, every EDS
   * cluster has its endpoints and every listener has its route table.
   */
  isReady(): boolean {
    if (!this.applied.has(TypeUrl.Cluster) || !this.applied.has(TypeUrl.Listener)) return false;
    if (!this.clusters.warm()) return false;
    // A certificate file that cannot be read keeps only its own servers closed (and says so); it does not hold readiness.
    if (
      !this.applier
        .secretNames()
        .every((n) => this.secrets.get(n) !== undefined || this.secrets.problem(n) !== undefined)
    )
      return false;
    return this.listeners.rdsNames().every((n) => this.routes.has(n));
  }

  async stop(): Promise<void> {
    this.certs?.stop();
    await this.ads.stop();
    // Our own upstream connections first: in a test, or a gateway looping to itself, they hold our listeners open.
    await this.pools.closeAll();
    this.grpc.close();
    await this.listeners.close();
    this.clusters.stop();
    await this.admin.close();
    await this.health.close();
    await this.rateLimits.store.close();
    this.secrets.close();
  }
}

function portOf(app: FastifyInstance): number {
  const a = app.server.address();
  return typeof a === 'object' && a ? a.port : 0;
}
