/**
 * Istio standard metrics as a proxy prints them on /stats/prometheus, for
 * building fixed expositions in tests.
 */
export interface Peer {
  workload: string;
  namespace?: string;
  app?: string;
  version?: string;
  sa?: string;
}

export interface Traffic {
  reporter: 'source' | 'destination';
  source: Peer | 'unknown';
  destination: Peer | 'unknown';
  /** Service short name, or a host for external services. */
  service: string;
  serviceNamespace?: string;
  code: string;
  flags?: string;
  security?: 'mutual_tls' | 'none' | 'unknown';
  protocol?: string;
  grpcStatus?: string;
}

export function labelsOf(t: Traffic): Record<string, string> {
  const src = t.source === 'unknown' ? undefined : t.source;
  const dst = t.destination === 'unknown' ? undefined : t.destination;
  const ns = t.serviceNamespace ?? 'default';
  const external = t.service.includes('.');
  return {
    reporter: t.reporter,
    source_workload: src?.workload ?? 'unknown',
    source_workload_namespace: src ? (src.namespace ?? 'default') : 'unknown',
    source_principal: src
      ? `spiffe://cluster.local/ns/${src.namespace ?? 'default'}/sa/${src.sa ?? src.app ?? src.workload}`
      : 'unknown',
    source_app: src?.app ?? 'unknown',
    source_version: src?.version ?? 'unknown',
    source_canonical_service: src?.app ?? 'unknown',
    destination_workload: dst?.workload ?? 'unknown',
    destination_workload_namespace: dst ? (dst.namespace ?? 'default') : 'unknown',
    destination_principal: dst
      ? `spiffe://cluster.local/ns/${dst.namespace ?? 'default'}/sa/${dst.sa ?? dst.app ?? dst.workload}`
      : 'unknown',
    destination_app: dst?.app ?? 'unknown',
    destination_version: dst?.version ?? 'unknown',
    destination_service: external ? t.service : `${t.service}.${ns}.svc.cluster.local`,
    destination_service_name: t.service,
    destination_service_namespace: external ? 'unknown' : ns,
    destination_canonical_service: dst?.app ?? 'unknown',
    request_protocol: t.protocol ?? 'http',
    response_code: t.code,
    grpc_response_status: t.grpcStatus ?? '',
    response_flags: t.flags ?? '-',
    connection_security_policy: t.security ?? (t.reporter === 'source' ? 'unknown' : 'mutual_tls'),
  };
}

function line(name: string, labels: Record<string, string>, value: number): string {
  const parts = Object.entries(labels).map(
    ([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`,
  );
  return `${name}{${parts.join(',')}} ${value}`;
}

export const BUCKETS = ['1', '5', '10', '25', '50', '100', '250', '+Inf'];

export interface Counts {
  requests: number;
  /** Cumulative counts per BUCKETS entry; defaults to every request in the first bucket. */
  buckets?: number[];
  durationSum?: number;
  requestBytes?: number;
  responseBytes?: number;
}

/** One label set's request metrics, as text lines. */
export function requestLines(t: Traffic, c: Counts): string[] {
  const labels = labelsOf(t);
  const buckets = c.buckets ?? BUCKETS.map(() => c.requests);
  return [
    line('istio_requests_total', labels, c.requests),
    ...BUCKETS.map((le, i) =>
      line('istio_request_duration_milliseconds_bucket', { ...labels, le }, buckets[i]!),
    ),
    line('istio_request_duration_milliseconds_sum', labels, c.durationSum ?? c.requests * 0.5),
    line('istio_request_duration_milliseconds_count', labels, c.requests),
    line('istio_request_bytes_sum', labels, c.requestBytes ?? c.requests * 100),
    line('istio_request_bytes_count', labels, c.requests),
    line('istio_response_bytes_sum', labels, c.responseBytes ?? c.requests * 1000),
    line('istio_response_bytes_count', labels, c.requests),
  ];
}

export function exposition(...groups: string[][]): string {
  return [
    '# HELP istio_requests_total Total requests.',
    '# TYPE istio_requests_total counter',
    '# TYPE istio_request_duration_milliseconds histogram',
    '# TYPE istio_request_bytes histogram',
    '# TYPE istio_response_bytes histogram',
    ...groups.flat(),
    '',
  ].join('\n');
}

export const BOOKINFO = {
  ingress: {
    workload: 'istio-ingressgateway',
    namespace: 'istio-system',
    app: 'istio-ingressgateway',
    sa: 'istio-ingressgateway-service-account',
  },
  productpage: { workload: 'productpage-v1', app: 'productpage', version: 'v1', sa: 'bookinfo-productpage' },
  details: { workload: 'details-v1', app: 'details', version: 'v1', sa: 'bookinfo-details' },
  reviewsV1: { workload: 'reviews-v1', app: 'reviews', version: 'v1', sa: 'bookinfo-reviews' },
  reviewsV2: { workload: 'reviews-v2', app: 'reviews', version: 'v2', sa: 'bookinfo-reviews' },
  reviewsV3: { workload: 'reviews-v3', app: 'reviews', version: 'v3', sa: 'bookinfo-reviews' },
  ratings: { workload: 'ratings-v1', app: 'ratings', version: 'v1', sa: 'bookinfo-ratings' },
} satisfies Record<string, Peer>;

/** A pilot /debug/syncz entry in the shape pilot serves. */
export function syncEntry(peer: Peer, statsPort: number | undefined, type: 'sidecar' | 'router' = 'sidecar') {
  const ns = peer.namespace ?? 'default';
  return {
    proxy: `${type}~127.0.0.1~${peer.workload}-5d8f.${ns}~${ns}.svc.cluster.local`,
    proxy_type: type,
    namespace: ns,
    workload: peer.workload,
    service_account: peer.sa,
    labels: { app: peer.app, version: peer.version },
    istio_version: 'mizzen',
    peer: 'ipv4:127.0.0.1:50000',
    connected_at: new Date().toISOString(),
    ports: { admin: 15000, health: 15021, stats: statsPort },
    cluster_sent: 'v1',
    cluster_acked: 'v1',
    sync: { CDS: 'ACKED', LDS: 'ACKED', EDS: 'ACKED', RDS: 'ACKED' },
  };
}
