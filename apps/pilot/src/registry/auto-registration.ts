import type { ConfigResource, FileStore } from '@mizzen/api';
import { configKey } from '@mizzen/api';
import type { Logger } from '@mizzen/runtime';
import type { ProxyInfo } from '../model/proxy.js';
import { AUTO_REGISTERED_LABEL, PORTS_ANNOTATION, SERVICE_ANNOTATION, WORKLOAD_NAME_LABEL } from './build.js';

export const PROXY_ANNOTATION = 'mizzen.io/proxy-id';

/** A Kubernetes label value (a workload name that is not one stays out of the labels). */
const LABEL_VALUE = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/** A DNS-1123 name for the WorkloadEntry of a workload. */
function entryName(workload: string): string {
  const cleaned = workload
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, '-')
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '');
  return (cleaned || 'workload').slice(0, 253);
}

/**
 * Istio's WorkloadEntry auto-registration for local mode: a sidecar (or a
 * gateway) that connects declaring its service and ports gets a WorkloadEntry, written to
 * the persistent store so endpoints survive a pilot restart; when it
 * disconnects the entry is removed after a grace period unless it comes back.
 */
export class AutoRegistration {
  private readonly pendingRemoval = new Map<string, NodeJS.Timeout>();
  private readonly connections = new Map<string, number>();

  constructor(
    private readonly store: FileStore,
    private readonly logger: Logger,
    private readonly gracePeriodMs = 10_000,
  ) {}

  /** Entries left by a previous pilot are kept for a grace period so their proxies can reconnect. */
  start(): void {
    for (const r of this.store.list()) {
      if (r.kind === 'WorkloadEntry' && r.metadata.labels?.[AUTO_REGISTERED_LABEL] === 'true') {
        this.scheduleRemoval(configKey(r));
      }
    }
  }

  stop(): void {
    for (const t of this.pendingRemoval.values()) clearTimeout(t);
    this.pendingRemoval.clear();
  }

  connected(proxy: ProxyInfo): void {
    if (!registers(proxy)) return;
    const entry = this.workloadEntry(proxy);
    const key = configKey(entry);
    this.connections.set(key, (this.connections.get(key) ?? 0) + 1);
    this.cancelRemoval(key);
    const existing = this.store.get(key);
    if (
      existing &&
      JSON.stringify(existing.spec) === JSON.stringify(entry.spec) &&
      sameMetadata(existing, entry)
    )
      return;
    try {
      this.store.apply([entry]);
    } catch (err) {
      // A proxy declaring labels or ports the API rejects is not registered; it still gets its config.
      this.logger.error({ proxy: proxy.id, err: (err as Error).message }, 'cannot auto-register workload');
      return;
    }
    this.logger.info({ workloadEntry: key, proxy: proxy.id }, 'auto-registered workload');
  }

  disconnected(proxy: ProxyInfo): void {
    if (!registers(proxy)) return;
    const key = configKey(this.workloadEntry(proxy));
    const left = (this.connections.get(key) ?? 1) - 1;
    if (left > 0) {
      this.connections.set(key, left);
      return;
    }
    this.connections.delete(key);
    this.scheduleRemoval(key);
  }

  private scheduleRemoval(key: string): void {
    this.cancelRemoval(key);
    const timer = setTimeout(() => {
      this.pendingRemoval.delete(key);
      if (this.connections.has(key)) return;
      this.store.delete([key]);
      this.logger.info({ workloadEntry: key }, 'removed auto-registered workload after its proxy left');
    }, this.gracePeriodMs);
    timer.unref();
    this.pendingRemoval.set(key, timer);
  }

  private cancelRemoval(key: string): void {
    const t = this.pendingRemoval.get(key);
    if (t) clearTimeout(t);
    this.pendingRemoval.delete(key);
  }

  private workloadEntry(proxy: ProxyInfo): ConfigResource<'WorkloadEntry'> {
    const ports: Record<string, number> = {};
    for (const p of proxy.ports) ports[p.name] = p.listenPort;
    const annotations: Record<string, string> = {
      [PROXY_ANNOTATION]: proxy.id,
      [PORTS_ANNOTATION]: JSON.stringify(
        proxy.ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol })),
      ),
    };
    if (proxy.service) annotations[SERVICE_ANNOTATION] = proxy.service;
    return {
      apiVersion: 'networking.istio.io/v1',
      kind: 'WorkloadEntry',
      metadata: {
        // One entry per proxy: pods of one workload share its name.
        name: entryName(proxy.podName),
        namespace: proxy.namespace,
        // Pods of one workload share its name (ISTIO_META_WORKLOAD_NAME): telemetry names endpoints by it.
        labels: {
          [AUTO_REGISTERED_LABEL]: 'true',
          ...(LABEL_VALUE.test(proxy.workloadName) ? { [WORKLOAD_NAME_LABEL]: proxy.workloadName } : {}),
        },
        annotations,
      },
      spec: {
        address: proxy.ip,
        labels: proxy.labels,
        ports,
        ...(proxy.serviceAccount ? { serviceAccount: proxy.serviceAccount } : {}),
        // The proxy's --locality is its workload's: callers' locality load balancing reads it here.
        ...(proxy.locality ? { locality: localityLabel(proxy.locality) } : {}),
        // Its network (ISTIO_META_NETWORK): proxies on other networks reach it through that network's gateway.
        ...(proxy.network ? { network: proxy.network } : {}),
      },
    } as ConfigResource<'WorkloadEntry'>;
  }
}

/**
 * Sidecars that declare ports register; so do gateways that declare their
 * service ports (`istio-egressgateway.istio-system.svc.cluster.local` is how
 * sidecars route to the egress gateway, as a Service is in Kubernetes).
 */
function registers(proxy: ProxyInfo): boolean {
  return (
    !proxy.proxyless && proxy.ports.length > 0 && (proxy.type === 'sidecar' || proxy.service !== undefined)
  );
}

/** `region/zone/subzone`, without trailing empty parts. */
function localityLabel(l: { region: string; zone: string; subZone: string }): string {
  return [l.region, l.zone, l.subZone].join('/').replace(/\/+$/, '');
}

function sameMetadata(a: ConfigResource, b: ConfigResource): boolean {
  return (
    JSON.stringify(a.metadata.annotations ?? {}) === JSON.stringify(b.metadata.annotations ?? {}) &&
    JSON.stringify(a.metadata.labels ?? {}) === JSON.stringify(b.metadata.labels ?? {})
  );
}
