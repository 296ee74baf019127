import type { ClusterConfig, EndpointSpec } from '../config/cluster.js';
import type { ProxyEndpoint } from '../listeners/proxy-protocol.js';
import type { PeerMetadata } from '../observe/records.js';
import type { SecretStore } from '../security/secret-store.js';
import type { UpstreamTls } from '../security/tls-provider.js';
import { TlsContextProvider } from '../security/tls-provider.js';
import { CircuitBreaker } from './circuit-breaker.js';
import type { ProxyProtocolStamp } from './connect.js';
import type { ConnectionPools, ConnectionSettings } from './connection-pools.js';
import { makeHost, type UpstreamHost } from './host.js';
import { LoadBalancer, type PickRequest } from './load-balancer.js';
import { type AttemptOutcome, OutlierDetector } from './outlier-detector.js';

/** Where the downstream was going before the proxy caught it (ORIGINAL_DST clusters send it there). */
export interface OriginalDestination {
  readonly host: string;
  readonly port: number;
}

/** A cluster as the router uses it: its config, a balancer over its endpoints, its circuit breaker and outlier detector. */
export class ClusterRuntime {
  private balancer: LoadBalancer;
  private hostList: readonly UpstreamHost[];
  /**
   * When each host joined (slow start counts from there). Hosts of the first
   * assignment map to undefined: as in Envoy, only hosts added later ramp up.
   */
  private joinTimes = new Map<string, number | undefined>();
  private seeded = false;
  readonly breaker: CircuitBreaker;
  readonly outlier?: OutlierDetector;
  /** How connections to this cluster's hosts are made. */
  readonly connectionSettings: ConnectionSettings;

  /** TLS origination per transport (the cluster's own, and each transport socket match's). */
  private readonly tlsDefault?: TlsContextProvider;
  private readonly tlsMatches: readonly {
    match: Readonly<Record<string, string>>;
    provider?: TlsContextProvider;
  }[];

  constructor(
    readonly config: ClusterConfig,
    endpoints: readonly EndpointSpec[],
    private readonly pools: ConnectionPools,
    previous: ClusterRuntime | undefined,
    secrets: SecretStore,
  ) {
    this.tlsDefault = config.tls ? new TlsContextProvider(config.tls, secrets) : undefined;
    this.tlsMatches = config.transportMatches.map((m) => ({
      match: m.match,
      provider: m.tls ? new TlsContextProvider(m.tls, secrets) : undefined,
    }));
    // Counters and ejections outlive a config update of the same cluster, so limits hold across pushes.
    this.breaker = previous?.breaker ?? new CircuitBreaker(config.limits, config.http.maxConcurrentStreams);
    if (previous) this.breaker.update(config.limits, config.http.maxConcurrentStreams);
    if (config.outlier) {
      this.outlier = previous?.outlier ?? new OutlierDetector(config.outlier);
      if (previous?.outlier) this.outlier.update(config.outlier);
    } else previous?.outlier?.stop();
    this.connectionSettings = {
      connectTimeoutMs: config.connectTimeoutMs,
      idleTimeoutMs: config.http.idleTimeoutMs,
      maxRequestsPerConnection: config.http.maxRequestsPerConnection,
      maxConnectionDurationMs: config.http.maxConnectionDurationMs,
      maxConcurrentStreams: config.http.maxConcurrentStreams,
      ...(config.tcpKeepalive ? { tcpKeepalive: config.tcpKeepalive } : {}),
      ...(config.sourceAddresses ? { sourceAddresses: config.sourceAddresses } : {}),
    };
    if (previous) {
      this.joinTimes = previous.joinTimes;
      this.seeded = previous.seeded;
    }
    this.hostList = toHosts(endpoints);
    this.trackJoins();
    this.balancer = this.makeBalancer();
  }

  get name(): string {
    return this.config.name;
  }

  hosts(): readonly UpstreamHost[] {
    return this.hostList;
  }

  setEndpoints(endpoints: readonly EndpointSpec[]): void {
    this.hostList = toHosts(endpoints);
    this.trackJoins();
    this.balancer = this.makeBalancer();
  }

  /** A host for one attempt, or undefined when the cluster has none to offer. */
  pick(originalDst?: OriginalDestination, request?: PickRequest): UpstreamHost | undefined {
    if (this.config.type === 'ORIGINAL_DST') {
      return originalDst ? makeHost(originalDst.host, originalDst.port) : undefined;
    }
    return this.balancer.pick(request);
  }

  /** Each priority level's share of new requests (percent), as the balancer computes it now. */
  priorityLoad(): number[] {
    return this.balancer.priorityLoad();
  }

  /**
   * The TLS a connection to this host needs (undefined: plaintext): the first
   * transport socket match whose labels the host's metadata has (Istio's
   * auto-mTLS picks mTLS for hosts with sidecars this way), else the cluster's own.
   */
  tlsFor(host: UpstreamHost): TlsContextProvider | undefined {
    for (const m of this.tlsMatches) {
      if (Object.entries(m.match).every(([k, v]) => host.transportMatch[k] === v)) return m.provider;
    }
    return this.tlsDefault;
  }

  /** The PROXY header data for a connection made on behalf of a downstream, when this cluster sends one. */
  proxyProtocolStamp(
    downstream: { source: ProxyEndpoint; destination: ProxyEndpoint } | undefined,
  ): ProxyProtocolStamp | undefined {
    const version = this.config.proxyProtocol;
    if (!version) return undefined;
    // Without a downstream (the proxy's own calls), the addresses are unknown: v1 UNKNOWN / v2 LOCAL.
    const none = { address: '', port: 0 };
    return { version, source: downstream?.source ?? none, destination: downstream?.destination ?? none };
  }

  /** A raw HTTP/2 stream to one of this cluster's hosts on its pooled sessions (tcp_proxy tunnels). */
  openTunnelStream(
    host: UpstreamHost,
    headers: import('node:http2').OutgoingHttpHeaders,
    tls: UpstreamTls | undefined,
    stamp: ProxyProtocolStamp | undefined,
  ): Promise<import('node:http2').ClientHttp2Stream> {
    return this.pools.openH2Stream(host, this.connectionSettings, headers, tls, stamp);
  }

  /** Records how an attempt to a host ended, for outlier detection. */
  report(hostKey: string, outcome: AttemptOutcome): void {
    this.outlier?.report(hostKey, outcome, this.hostList.length);
  }

  isEjected(hostKey: string): boolean {
    return this.outlier?.isEjected(hostKey) ?? false;
  }

  stop(): void {
    this.outlier?.stop();
  }

  private makeBalancer(): LoadBalancer {
    return new LoadBalancer(this.config.lb, this.hostList, {
      active: (k) => this.pools.active(k),
      isEjected: this.outlier ? (k) => this.outlier!.isEjected(k) : undefined,
      panicThresholdPercent: this.config.panicThresholdPercent,
      hashTableSize: this.config.hashTableSize,
      maximumRingSize: this.config.maximumRingSize,
      localityWeighted: this.config.localityWeighted,
      slowStart: this.config.slowStart,
      joinedAt: (k) => this.joinTimes.get(k),
    });
  }

  /** Records when hosts joined; a host that leaves and comes back joins anew. */
  private trackJoins(): void {
    const now = Date.now();
    const present = new Set(this.hostList.map((h) => h.key));
    if (!this.seeded) {
      if (present.size === 0) return;
      this.seeded = true;
      for (const k of present) this.joinTimes.set(k, undefined);
      return;
    }
    for (const k of present) if (!this.joinTimes.has(k)) this.joinTimes.set(k, now);
    for (const k of [...this.joinTimes.keys()]) if (!present.has(k)) this.joinTimes.delete(k);
  }
}

function toHosts(endpoints: readonly EndpointSpec[]): UpstreamHost[] {
  return endpoints.map((e) =>
    makeHost(
      e.address,
      e.port,
      e.weight,
      e.healthy,
      e.locality,
      e.sidecar,
      e.transportMatch,
      {
        pipe: e.pipe,
        priority: e.priority,
        localityWeight: e.localityWeight,
        overprovisioningFactor: e.overprovisioningFactor,
      },
      e.identity,
    ),
  );
}

/** How long a cluster removed by CDS stays usable, so routes pushed just after it never see it missing. */
const REMOVED_CLUSTER_GRACE_MS = 5_000;

/**
 * Every cluster the proxy knows (CDS) with its endpoints (inline or EDS).
 * Updates replace whole objects, so a request that already picked a cluster
 * finishes on it while new requests see the new state.
 */
export class ClusterManager {
  private clusters = new Map<string, ClusterRuntime>();
  /** ClusterLoadAssignments by EDS service name; kept while some cluster subscribes to them. */
  private readonly assignments = new Map<string, readonly EndpointSpec[]>();
  private readonly removed = new Map<string, { runtime: ClusterRuntime; timer: NodeJS.Timeout }>();
  /** Workloads by the SPIFFE identity they run as (null: more than one), built on demand from the endpoints. */
  private byPrincipal?: Map<string, PeerMetadata | null>;

  constructor(
    private readonly pools: ConnectionPools,
    private readonly secrets: SecretStore,
  ) {}

  /** Secret names the clusters' TLS contexts use (to subscribe over SDS). */
  secretNames(): string[] {
    const names = new Set<string>();
    for (const r of this.clusters.values()) {
      for (const spec of [r.config.tls, ...r.config.transportMatches.map((m) => m.tls)])
        for (const n of spec?.secrets ?? []) names.add(n);
    }
    return [...names].sort();
  }

  /** State of the world CDS: `configs` is every cluster the proxy should have. */
  applyClusters(configs: readonly ClusterConfig[]): void {
    const next = new Map<string, ClusterRuntime>();
    for (const config of configs) {
      const endpoints = config.endpoints ?? this.assignments.get(config.edsServiceName ?? '') ?? [];
      next.set(
        config.name,
        new ClusterRuntime(config, endpoints, this.pools, this.clusters.get(config.name), this.secrets),
      );
    }
    for (const [name, runtime] of this.clusters) {
      if (next.has(name)) continue;
      const timer = setTimeout(() => {
        this.removed.delete(name);
        runtime.stop();
        this.retainPools();
      }, REMOVED_CLUSTER_GRACE_MS);
      timer.unref();
      this.removed.get(name) && clearTimeout(this.removed.get(name)!.timer);
      this.removed.set(name, { runtime, timer });
    }
    for (const name of next.keys()) {
      const r = this.removed.get(name);
      if (r) {
        clearTimeout(r.timer);
        this.removed.delete(name);
      }
    }
    this.clusters = next;
    this.byPrincipal = undefined;
    const wanted = new Set(this.edsServiceNames());
    for (const name of this.assignments.keys()) if (!wanted.has(name)) this.assignments.delete(name);
    this.retainPools();
  }

  /** EDS: assignments named in the response replace what was there; others are kept (SotW for non-wildcard types). */
  applyEndpoints(assignments: readonly { name: string; endpoints: readonly EndpointSpec[] }[]): void {
    for (const a of assignments) this.assignments.set(a.name, a.endpoints);
    this.byPrincipal = undefined;
    for (const runtime of this.clusters.values()) {
      const eds = runtime.config.edsServiceName;
      if (eds === undefined) continue;
      const endpoints = this.assignments.get(eds);
      if (endpoints && assignments.some((a) => a.name === eds)) runtime.setEndpoints(endpoints);
    }
    this.retainPools();
  }

  /**
   * The workload that runs as a SPIFFE identity, as pilot's endpoints name it:
   * how the server side of a TCP connection knows its caller from the
   * caller's certificate. Undefined when no endpoint, or several workloads,
   * run as it (a service account shared by workloads names none of them).
   */
  peerByPrincipal(principal: string): PeerMetadata | undefined {
    if (!this.byPrincipal) {
      const index = new Map<string, PeerMetadata | null>();
      const add = (e: EndpointSpec) => {
        const id = e.identity;
        if (!id?.principal) return;
        const known = index.get(id.principal);
        if (known === undefined) index.set(id.principal, id.peer);
        else if (known && (known.workload !== id.peer.workload || known.namespace !== id.peer.namespace))
          index.set(id.principal, null);
      };
      for (const list of this.assignments.values()) for (const e of list) add(e);
      for (const r of this.clusters.values()) for (const e of r.config.endpoints ?? []) add(e);
      this.byPrincipal = index;
    }
    return this.byPrincipal.get(principal) ?? undefined;
  }

  /** The ClusterLoadAssignment names the proxy must subscribe to. */
  edsServiceNames(): string[] {
    const names = new Set<string>();
    for (const r of this.clusters.values()) if (r.config.edsServiceName) names.add(r.config.edsServiceName);
    return [...names].sort();
  }

  /** True when every EDS cluster has received its endpoints at least once. */
  warm(): boolean {
    return this.edsServiceNames().every((n) => this.assignments.has(n));
  }

  get(name: string): ClusterRuntime | undefined {
    return this.clusters.get(name) ?? this.removed.get(name)?.runtime;
  }

  list(): ClusterRuntime[] {
    return [...this.clusters.values()];
  }

  endpointsOf(edsServiceName: string): readonly EndpointSpec[] | undefined {
    return this.assignments.get(edsServiceName);
  }

  stop(): void {
    for (const r of this.removed.values()) {
      clearTimeout(r.timer);
      r.runtime.stop();
    }
    this.removed.clear();
    for (const r of this.clusters.values()) r.stop();
  }

  private retainPools(): void {
    const keep = new Set<string>();
    const add = (r: ClusterRuntime) => {
      for (const h of r.hosts()) keep.add(h.key);
    };
    for (const r of this.clusters.values()) add(r);
    for (const r of this.removed.values()) add(r.runtime);
    // ORIGINAL_DST hosts are not listed anywhere; their pools live until the next reconciliation.
    this.pools.retainOnly(keep);
  }
}
