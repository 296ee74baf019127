import type { ConfigResource } from '@mizzen/api';
import { componentTracer, type Logger } from '@mizzen/runtime';
import {
  type AdsServer,
  type EncodedResource,
  encodeResource,
  type ResourceSet,
  Snapshot,
  TypeUrl,
  type XdsNode,
} from '@mizzen/xds';
import type { CredentialSource } from '../credentials/source.js';
import { mergeRegistries } from '../kube/merged-registry.js';
import { type ProxyInfo, proxyFromNode } from '../model/proxy.js';
import { generateResources } from '../networking/generate.js';
import type { MeshConfig } from '../networking/mesh-config.js';
import { PushContext } from '../networking/push-context.js';
import { buildRegistry } from '../registry/build.js';
import type { Registry } from '../registry/model.js';
import type { PilotMetrics } from './metrics.js';

export interface PushControllerOptions {
  ads: AdsServer;
  mesh: MeshConfig;
  logger: Logger;
  metrics?: PilotMetrics;
  /** Quiet period before a push (Istio's PILOT_DEBOUNCE_AFTER). */
  debounceMs?: number;
  /** Longest a push may be delayed by a stream of changes (PILOT_DEBOUNCE_MAX). */
  maxDelayMs?: number;
  /** Registries merged ahead of the one built from ServiceEntries and WorkloadEntries (Kubernetes). */
  registries?: () => readonly Registry[];
  /** Where gateway and DestinationRule `credentialName`s are found. */
  credentials?: CredentialSource;
}

export interface PushRecord {
  version: number;
  at: string;
  reason: string;
  proxies: number;
  durationMs: number;
}

interface ConnectedProxy {
  info: ProxyInfo;
  streams: number;
  /** The error that made pilot refuse to configure it (bad node metadata), if any. */
  error?: string;
}

const tracer = componentTracer('pilot');
/**
 * Turns config + registry into per-proxy snapshots: changes are debounced,
 * a PushContext is built once per push and each connected proxy gets its
 * snapshot; unchanged resources keep their version so nothing is re-sent.
 */
export class PushController {
  private context: PushContext;
  private resources: readonly ConfigResource[] = [];
  private readonly proxies = new Map<string, ConnectedProxy>();
  private timer?: NodeJS.Timeout;
  private firstPending?: number;
  private reasons = new Set<string>();
  private version = 0;
  private last?: PushRecord;
  private readonly debounceMs: number;
  private readonly maxDelayMs: number;
  private rootCert?: string;

  constructor(private readonly options: PushControllerOptions) {
    this.debounceMs = options.debounceMs ?? 100;
    this.maxDelayMs = options.maxDelayMs ?? 1000;
    this.context = this.buildContext();
  }

  /** New config (from the sources); a push follows after the debounce. */
  setConfig(resources: readonly ConfigResource[], reason = 'config changed'): void {
    this.resources = resources;
    this.schedule(reason);
  }

  /** The registry or mesh config changed outside the config resources: push after the debounce. */
  requestPush(reason: string): void {
    this.schedule(reason);
  }

  /** The mesh config in force. */
  mesh(): MeshConfig {
    return this.options.mesh;
  }

  /** New mesh config (the `istio` ConfigMap in Kubernetes mode); a push follows after the debounce. */
  setMesh(mesh: MeshConfig, reason = 'mesh config changed'): void {
    this.options.mesh = mesh;
    this.schedule(reason);
  }

  /** The mesh root bundle changed (citadel rotated or pilot just read it): every proxy gets the new ROOTCA. */
  setRootCert(pem: string): void {
    this.rootCert = pem;
    this.schedule('root certificate changed');
  }

  /** Pushes immediately (startup, tests). */
  pushNow(reason = 'forced'): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.reasons.add(reason);
    this.push();
  }

  /** A proxy opened an ADS stream: give it a snapshot from the current context right away. */
  proxyConnected(node: XdsNode): ProxyInfo | undefined {
    const existing = this.proxies.get(node.id);
    if (existing) {
      existing.streams++;
      this.updateSnapshot(existing);
      return existing.info;
    }
    let entry: ConnectedProxy;
    try {
      entry = { info: proxyFromNode(node), streams: 1 };
    } catch (err) {
      this.options.logger.error({ node: node.id, err: (err as Error).message }, 'cannot configure proxy');
      return undefined;
    }
    this.proxies.set(node.id, entry);
    this.options.metrics?.connectedProxies.set(this.proxies.size);
    this.updateSnapshot(entry);
    return entry.info;
  }

  proxyDisconnected(node: XdsNode): ProxyInfo | undefined {
    const entry = this.proxies.get(node.id);
    if (!entry) return undefined;
    entry.streams--;
    if (entry.streams <= 0) {
      this.proxies.delete(node.id);
      this.options.ads.clearSnapshot(node.id);
      this.options.metrics?.connectedProxies.set(this.proxies.size);
    }
    return entry.info;
  }

  connectedProxies(): ProxyInfo[] {
    return [...this.proxies.values()].map((p) => p.info);
  }

  pushContext(): PushContext {
    return this.context;
  }

  lastPush(): PushRecord | undefined {
    return this.last;
  }

  /** What a proxy would get now (for /debug/config_dump), built fresh. */
  resourcesFor(proxyId: string): ResourceSet | undefined {
    const entry = this.proxies.get(proxyId);
    return entry ? generateResources(this.context, entry.info) : undefined;
  }

  stop(): void {
    clearTimeout(this.timer);
  }

  private schedule(reason: string): void {
    this.reasons.add(reason);
    const now = Date.now();
    this.firstPending ??= now;
    clearTimeout(this.timer);
    const wait = Math.max(0, Math.min(this.debounceMs, this.firstPending + this.maxDelayMs - now));
    this.timer = setTimeout(() => this.push(), wait);
  }

  private buildContext(): PushContext {
    const own = buildRegistry(this.resources, this.options.mesh.domainSuffix);
    const registry = mergeRegistries([...(this.options.registries?.() ?? []), own]);
    return new PushContext(
      ++this.version,
      this.resources,
      registry,
      this.options.mesh,
      this.rootCert,
      this.options.credentials,
    );
  }

  private push(): void {
    const started = performance.now();
    const reason = [...this.reasons].join(', ') || 'push';
    // Pilot's own trace (OpenTelemetry, when OTEL_EXPORTER_OTLP_ENDPOINT is set): one span per push.
    const span = tracer.startSpan('pilot.push', { attributes: { 'mizzen.push.reason': reason } });
    this.reasons.clear();
    this.firstPending = undefined;
    this.timer = undefined;
    this.context = this.buildContext();
    const cache = new Map<string, EncodedResource>();
    let failed = 0;
    for (const entry of this.proxies.values()) {
      this.updateSnapshot(entry, cache);
      if (entry.error) failed++;
    }
    const durationMs = performance.now() - started;
    span.setAttributes({
      'mizzen.push.version': this.context.version,
      'mizzen.push.proxies': this.proxies.size,
      'mizzen.push.failed_proxies': failed,
      'mizzen.push.warnings': this.context.warnings.size,
    });
    span.end();
    this.last = {
      version: this.context.version,
      at: new Date().toISOString(),
      reason,
      proxies: this.proxies.size,
      durationMs: Math.round(durationMs * 100) / 100,
    };
    this.options.metrics?.pushTime.observe(durationMs / 1000);
    this.options.logger.info(this.last, 'pushed config');
    this.logNewWarnings();
  }

  private readonly warned = new Set<string>();

  /** Translation warnings, each logged once while it lasts (a push repeats them for every proxy). */
  private logNewWarnings(): void {
    for (const w of this.context.warnings) {
      if (!this.warned.has(w)) this.options.logger.warn({ version: this.context.version }, w);
    }
    this.warned.clear();
    for (const w of this.context.warnings) this.warned.add(w);
  }

  private updateSnapshot(entry: ConnectedProxy, cache = new Map<string, EncodedResource>()): void {
    try {
      const set = generateResources(this.context, entry.info);
      const encoded: Partial<Record<TypeUrl, EncodedResource[]>> = {};
      for (const [typeUrl, list] of Object.entries(set) as [TypeUrl, Record<string, unknown>[]][]) {
        encoded[typeUrl] = list.map((json) => {
          // Most clusters and endpoints are identical across proxies: encode each distinct one once per push.
          const key = `${typeUrl}\n${JSON.stringify(json)}`;
          let e = cache.get(key);
          if (!e) {
            e = encodeResource(typeUrl, json);
            cache.set(key, e);
          }
          return e;
        });
      }
      const before = this.options.ads.snapshotFor(entry.info.id);
      const snapshot = Snapshot.fromEncoded(encoded);
      if (this.options.metrics && before) {
        for (const t of Object.values(TypeUrl)) {
          if (snapshot.version(t) !== before.version(t))
            this.options.metrics.pushes.inc({ type: metricType(t) });
        }
      }
      entry.error = undefined;
      this.options.ads.setSnapshot(entry.info.id, snapshot);
    } catch (err) {
      entry.error = (err as Error).message;
      this.options.logger.error(
        { proxy: entry.info.id, err: entry.error },
        'failed to build config for proxy',
      );
    }
  }
}

function metricType(typeUrl: string): string {
  switch (typeUrl) {
    case TypeUrl.Cluster:
      return 'cds';
    case TypeUrl.ClusterLoadAssignment:
      return 'eds';
    case TypeUrl.Listener:
      return 'lds';
    case TypeUrl.RouteConfiguration:
      return 'rds';
    default:
      return 'sds';
  }
}
