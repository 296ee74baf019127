import type { HttpRequestRecord, PeerMetadata, TcpConnectionRecord } from '@mizzen/proxy';

/**
 * Istio's standard metric labels, derived the way Istio's stats filter
 * derives them: each proxy knows itself from its node metadata and the other
 * side from the peer metadata exchanged in `x-envoy-peer-metadata` (HTTP) or
 * the TCP metadata exchange's header (TCP over mutual TLS); the client
 * proxy reports `reporter="source"`, the server proxy `reporter="destination"`.
 */

export const UNKNOWN = 'unknown';

/** A workload as Istio's labels describe it (this proxy's own, or a peer's). */
export interface WorkloadIdentity {
  workload: string;
  namespace: string;
  labels: Readonly<Record<string, string>>;
  serviceAccount?: string;
  clusterId?: string;
}

/** The labels shared by HTTP and TCP metrics. */
export const PEER_LABELS = [
  'reporter',
  'source_workload',
  'source_workload_namespace',
  'source_principal',
  'source_app',
  'source_version',
  'source_canonical_service',
  'source_canonical_revision',
  'source_cluster',
  'destination_workload',
  'destination_workload_namespace',
  'destination_principal',
  'destination_app',
  'destination_version',
  'destination_service',
  'destination_service_name',
  'destination_service_namespace',
  'destination_canonical_service',
  'destination_canonical_revision',
  'destination_cluster',
  'request_protocol',
] as const;

/** Every label of Istio's HTTP/gRPC metrics, in Istio's order. */
export const HTTP_LABELS = [
  ...PEER_LABELS,
  'response_code',
  'grpc_response_status',
  'response_flags',
  'connection_security_policy',
] as const;

/** Every label of Istio's TCP metrics. */
export const TCP_LABELS = [...PEER_LABELS, 'response_flags', 'connection_security_policy'] as const;

export type Labels = Record<string, string>;

/** `service.istio.io/canonical-name`, else `app.kubernetes.io/name`, else `app`, else the workload name. */
export function canonicalService(w: Pick<WorkloadIdentity, 'labels' | 'workload'>): string {
  const l = w.labels;
  return (
    l['service.istio.io/canonical-name'] || l['app.kubernetes.io/name'] || l.app || w.workload || UNKNOWN
  );
}

/** `service.istio.io/canonical-revision`, else `app.kubernetes.io/version`, else `version`, else `latest`. */
export function canonicalRevision(w: Pick<WorkloadIdentity, 'labels'>): string {
  const l = w.labels;
  return l['service.istio.io/canonical-revision'] || l['app.kubernetes.io/version'] || l.version || 'latest';
}

/** `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`. */
export function spiffeId(w: WorkloadIdentity, trustDomain: string): string | undefined {
  return w.serviceAccount ? `spiffe://${trustDomain}/ns/${w.namespace}/sa/${w.serviceAccount}` : undefined;
}

export function peerIdentity(peer: PeerMetadata | undefined): WorkloadIdentity | undefined {
  if (!peer) return undefined;
  const workload = peer.workload ?? peer.name;
  if (!workload) return undefined;
  return {
    workload,
    namespace: peer.namespace ?? UNKNOWN,
    labels: peer.labels,
    serviceAccount: peer.serviceAccount,
    clusterId: peer.clusterId,
  };
}

function sideLabels(prefix: 'source' | 'destination', w: WorkloadIdentity | undefined): Labels {
  if (!w) {
    return {
      [`${prefix}_workload`]: UNKNOWN,
      [`${prefix}_workload_namespace`]: UNKNOWN,
      [`${prefix}_app`]: UNKNOWN,
      [`${prefix}_version`]: UNKNOWN,
      [`${prefix}_canonical_service`]: UNKNOWN,
      [`${prefix}_canonical_revision`]: UNKNOWN,
      [`${prefix}_cluster`]: UNKNOWN,
    };
  }
  return {
    [`${prefix}_workload`]: w.workload,
    [`${prefix}_workload_namespace`]: w.namespace,
    [`${prefix}_app`]: w.labels.app || UNKNOWN,
    [`${prefix}_version`]: w.labels.version || UNKNOWN,
    [`${prefix}_canonical_service`]: canonicalService(w),
    [`${prefix}_canonical_revision`]: canonicalRevision(w),
    [`${prefix}_cluster`]: w.clusterId || UNKNOWN,
  };
}

/** What a destination service is, from Istio's cluster name or the request's authority. */
export interface DestinationService {
  service: string;
  name: string;
  namespace: string;
}

/** `reviews.default.svc.cluster.local` → name `reviews`, namespace `default`; other hosts keep their name. */
function serviceFromHost(host: string): DestinationService {
  const parts = host.split('.');
  if (parts.length >= 3 && parts[2] === 'svc')
    return { service: host, name: parts[0]!, namespace: parts[1]! };
  return { service: host, name: host, namespace: UNKNOWN };
}

function stripPort(authority: string): string {
  const m = /^(\[[^\]]+\]|[^:]+)(?::\d+)?$/.exec(authority);
  return m ? m[1]! : authority;
}

/**
 * Istio's destination_service / _name / _namespace: the host in an outbound
 * cluster name (`outbound|9080|v1|reviews.default.svc.cluster.local`), the
 * authority for passthrough traffic, this workload's service inbound (or the
 * authority when host header fallback is allowed), `unknown` otherwise.
 */
export function destinationService(opts: {
  cluster?: string;
  /** The route that answered: Istio's catch-all routes name the cluster they stand for. */
  route?: string;
  authority?: string;
  inboundService?: string;
  hostHeaderFallback: boolean;
}): DestinationService {
  const cluster = opts.cluster ?? '';
  const parts = cluster.split('|');
  if (parts.length === 4 && parts[0] === 'outbound' && parts[3]) return serviceFromHost(parts[3]);
  if (cluster === 'PassthroughCluster' || cluster === 'InboundPassthroughCluster') {
    const host = opts.authority ? stripPort(opts.authority) : UNKNOWN;
    return { service: host, name: cluster, namespace: UNKNOWN };
  }
  // REGISTRY_ONLY answers unknown destinations from the `block_all` route (502), counted as BlackHoleCluster.
  if (cluster === 'BlackHoleCluster' || opts.route === 'block_all')
    return { service: 'BlackHoleCluster', name: 'BlackHoleCluster', namespace: UNKNOWN };
  if (opts.inboundService) return serviceFromHost(opts.inboundService);
  if (opts.hostHeaderFallback && opts.authority) return serviceFromHost(stripPort(opts.authority));
  return { service: UNKNOWN, name: UNKNOWN, namespace: UNKNOWN };
}

/** What the labeller knows about the proxy it runs in. */
export interface LocalProxy {
  identity: WorkloadIdentity;
  trustDomain: string;
  /** The FQDN of the service this workload serves (inbound destination_service), when known. */
  inboundService?: string;
}

function isGrpc(record: HttpRequestRecord): boolean {
  const ct = record.headers['content-type'];
  return typeof ct === 'string' && ct.startsWith('application/grpc');
}

/**
 * The standard labels of one HTTP request as this proxy reports it: the
 * exact set Istio's stats filter produces for its reporter.
 */
export function httpLabels(
  local: LocalProxy,
  record: HttpRequestRecord,
  opts: { hostHeaderFallback?: boolean } = {},
): Labels {
  const inbound = record.direction === 'inbound';
  const peer = peerIdentity(record.peer);
  const mtls = record.connectionSecurityPolicy === 'mutual_tls';
  const own = mtls ? spiffeId(local.identity, local.trustDomain) : undefined;
  const dest = destinationService({
    cluster: record.upstreamCluster,
    route: record.routeName,
    authority: record.authority,
    inboundService: inbound ? local.inboundService : undefined,
    hostHeaderFallback: opts.hostHeaderFallback ?? !inbound,
  });
  const source = inbound ? peer : local.identity;
  const destination = inbound ? local.identity : peer;
  const sourcePrincipal = inbound ? (mtls ? record.sourcePrincipal : undefined) : own;
  const destinationPrincipal = inbound ? own : mtls ? record.destinationPrincipal : undefined;
  return {
    reporter: inbound ? 'destination' : 'source',
    ...sideLabels('source', source),
    source_principal: sourcePrincipal || UNKNOWN,
    ...sideLabels('destination', destination),
    destination_principal: destinationPrincipal || UNKNOWN,
    destination_service: dest.service,
    destination_service_name: dest.name,
    destination_service_namespace: dest.namespace,
    request_protocol: isGrpc(record) ? 'grpc' : 'http',
    response_code: String(record.responseCode),
    grpc_response_status: record.grpcStatus ?? '',
    response_flags: record.responseFlags || '-',
    // The client cannot know how the server accepted the connection: Istio reports `unknown` there.
    connection_security_policy: inbound ? record.connectionSecurityPolicy : UNKNOWN,
  };
}

/** The namespace in a SPIFFE id (`spiffe://td/ns/<namespace>/sa/<sa>`). */
function namespaceOfPrincipal(principal: string | undefined): string | undefined {
  return principal ? /\/ns\/([^/]+)\//.exec(principal)?.[1] : undefined;
}

/**
 * The standard labels of one TCP connection as this proxy reports it. The
 * other side is the workload its sidecar named in Istio's TCP metadata
 * exchange (mutual TLS between sidecars); without one, what the proxy knows
 * by itself: the caller's certificate (its principal, and its workload when
 * pilot's endpoints name the one running as it), or the upstream host's
 * workload from its endpoint metadata. Principals always come from the
 * certificates, never from the exchanged metadata.
 */
export function tcpLabels(local: LocalProxy, record: TcpConnectionRecord): Labels {
  const inbound = record.direction === 'inbound';
  const dest = destinationService({
    cluster: record.upstreamCluster,
    inboundService: inbound ? local.inboundService : undefined,
    hostHeaderFallback: false,
  });
  const mtls = record.connectionSecurityPolicy === 'mutual_tls';
  const own = mtls ? spiffeId(local.identity, local.trustDomain) : undefined;
  const peer = peerIdentity(record.peer);
  const sourcePrincipal = inbound ? (mtls ? record.sourcePrincipal : undefined) : own;
  const destinationPrincipal = inbound ? own : mtls ? record.destinationPrincipal : undefined;
  const source = sideLabels('source', inbound ? peer : local.identity);
  // A caller known only by its certificate still names its namespace.
  const callerNamespace = inbound && !peer ? namespaceOfPrincipal(sourcePrincipal) : undefined;
  if (callerNamespace) source.source_workload_namespace = callerNamespace;
  return {
    reporter: inbound ? 'destination' : 'source',
    ...source,
    source_principal: sourcePrincipal || UNKNOWN,
    ...sideLabels('destination', inbound ? local.identity : peer),
    destination_principal: destinationPrincipal || UNKNOWN,
    destination_service: dest.service,
    destination_service_name: dest.name,
    destination_service_namespace: dest.namespace,
    request_protocol: 'tcp',
    response_flags: record.responseFlags || '-',
    // The client cannot know how the server accepted the connection: Istio reports `unknown` there.
    connection_security_policy: inbound ? record.connectionSecurityPolicy : UNKNOWN,
  };
}

/** This proxy's identity from its node metadata (what `x-envoy-peer-metadata` tells the other side). */
export function identityFromNode(node: { id: string; metadata?: Record<string, unknown> }): WorkloadIdentity {
  const md = node.metadata ?? {};
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  const podNs = node.id.split('~')[2] ?? '';
  const dot = podNs.lastIndexOf('.');
  const labels: Record<string, string> = {};
  const raw = md.LABELS;
  if (raw && typeof raw === 'object')
    for (const [k, v] of Object.entries(raw as Record<string, unknown>)) labels[k] = String(v);
  return {
    workload: str(md.WORKLOAD_NAME) ?? (dot > 0 ? podNs.slice(0, dot) : podNs),
    namespace: str(md.NAMESPACE) ?? (dot > 0 ? podNs.slice(dot + 1) : 'default'),
    labels,
    serviceAccount: str(md.SERVICE_ACCOUNT),
    clusterId: str(md.CLUSTER_ID),
  };
}
