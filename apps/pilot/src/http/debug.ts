import { formatIssue } from '@mizzen/api';
import { type AdsServer, decodeMessage, type StreamStatus, shortType, TypeUrl } from '@mizzen/xds';
import type { FastifyInstance } from 'fastify';
import type { AggregateConfig } from '../config/aggregate.js';
import type { ProxyInfo } from '../model/proxy.js';
import { gatewayNotices } from '../networking/gateway.js';
import type { PushController } from '../xds/push-controller.js';

export interface DebugDeps {
  ads: AdsServer;
  push: PushController;
  config: AggregateConfig;
  /** This pilot's name, as proxy-status shows it in the ISTIOD column (the pod's name on Kubernetes). */
  instance: string;
}

/**
 * Where the proxy's admin API listens (`IP:PORT`, IPv6 bracketed): the node
 * id's IP, as proxies bind their admin port to it, and `MIZZEN_ADMIN_PORT`.
 */
export function adminAddress(proxy: ProxyInfo | undefined): string | undefined {
  if (!proxy?.adminPort || !proxy.ip) return undefined;
  return `${proxy.ip.includes(':') ? `[${proxy.ip}]` : proxy.ip}:${proxy.adminPort}`;
}

const ISTIO_FIELDS: Record<string, string> = {
  CDS: 'cluster',
  LDS: 'listener',
  RDS: 'route',
  EDS: 'endpoint',
};

/** One line of /debug/syncz: Istio's sent/acked fields plus per-type state and NACK reasons. */
export function syncEntry(
  stream: StreamStatus,
  proxy: ProxyInfo | undefined,
  warnings: readonly string[] = [],
  instance?: string,
): Record<string, unknown> {
  const sync: Record<string, string> = {};
  const errors: Record<string, string> = {};
  const entry: Record<string, unknown> = {
    proxy: stream.node.id,
    proxy_type: proxy?.proxyless ? 'grpc' : (proxy?.type ?? 'unknown'),
    namespace: proxy?.namespace,
    workload: proxy?.workloadName,
    service_account: proxy?.serviceAccount,
    labels: proxy?.labels,
    istio_version: proxy?.istioVersion,
    proxy_version: stream.node.user_agent_version,
    cluster_id: typeof proxy?.metadata.CLUSTER_ID === 'string' ? proxy.metadata.CLUSTER_ID : undefined,
    istiod: instance,
    admin: adminAddress(proxy),
    peer: stream.peer,
    connected_at: stream.connectedAt,
    ports: proxy
      ? {
          admin: proxy.adminPort,
          health: proxy.healthPort,
          stats: proxy.statsPort,
          outbound: proxy.outboundPort,
          inbound: (proxy.type === 'router' ? [] : proxy.ports).map((p) => ({
            name: p.name,
            port: p.port,
            listenPort: p.listenPort,
            appPort: p.targetPort,
          })),
          gateway: proxy.type === 'router' ? proxy.gatewayPorts : undefined,
        }
      : undefined,
  };
  for (const t of stream.types) {
    const short = String(t.type);
    sync[short] = t.state;
    if (t.error) errors[short] = t.error;
    const field = ISTIO_FIELDS[short];
    if (field) {
      entry[`${field}_sent`] = t.sentVersion ?? '';
      entry[`${field}_acked`] = t.ackedVersion ?? '';
    }
  }
  entry.sync = sync;
  if (Object.keys(errors).length) entry.errors = errors;
  // Gateway servers left closed (a missing certificate…) or overlapping another Gateway, and why.
  if (warnings.length) entry.warnings = warnings;
  entry.types = stream.types;
  return entry;
}

export function registerDebugRoutes(app: FastifyInstance, deps: DebugDeps): void {
  app.get('/debug/syncz', async () => {
    const proxies = new Map(deps.push.connectedProxies().map((p) => [p.id, p]));
    const push = deps.push.pushContext();
    return deps.ads.status().map((s) => {
      const proxy = proxies.get(s.node.id);
      return syncEntry(s, proxy, proxy?.type === 'router' ? gatewayNotices(push, proxy) : [], deps.instance);
    });
  });

  app.get('/debug/configz', async () => ({
    resources: deps.config.entries().map(({ resource, source }) => ({ ...resource, source })),
    issues: deps.config.issues().map((i) => ({ ...i, message: formatIssue(i) })),
  }));

  app.get('/debug/registryz', async () => {
    const registry = deps.push.pushContext().registry;
    return registry.services().map((service) => ({
      ...service,
      endpoints: Object.fromEntries(
        service.ports.map((p) => [p.port, registry.endpoints(service.hostname, p.port)]),
      ),
    }));
  });

  app.get('/debug/push_status', async () => ({
    lastPush: deps.push.lastPush() ?? null,
    proxies: deps.push.connectedProxies().length,
  }));

  // proto3 JSON names (`lbPolicy`) as istiod's dump; `names=proto` for Envoy's (`lb_policy`), as a proxy's admin API prints them.
  app.get<{ Querystring: { proxyID?: string; names?: string } }>('/debug/config_dump', async (req, reply) => {
    const id = req.query.proxyID;
    if (!id) return reply.code(400).send({ error: 'proxyID query parameter is required' });
    const names = req.query.names ?? 'json';
    if (names !== 'json' && names !== 'proto')
      return reply.code(400).send({ error: `names must be json or proto, got "${names}"` });
    const set = deps.push.resourcesFor(id);
    if (!set) return reply.code(404).send({ error: `proxy ${id} is not connected` });
    const snapshot = deps.ads.snapshotFor(id);
    const out: Record<string, unknown> = {};
    for (const t of [
      TypeUrl.Cluster,
      TypeUrl.ClusterLoadAssignment,
      TypeUrl.Listener,
      TypeUrl.RouteConfiguration,
    ]) {
      const typeSnap = snapshot?.get(t);
      out[shortType(t)] = {
        version: typeSnap?.version ?? '',
        resources: typeSnap
          ? [...typeSnap.resources.values()].map((r) => decodeMessage(t, r.any.value, names))
          : [],
      };
    }
    return out;
  });
}
