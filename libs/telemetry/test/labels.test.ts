import { describe, expect, it } from 'vitest';
import {
  canonicalRevision,
  canonicalService,
  destinationService,
  HTTP_LABELS,
  httpLabels,
  TCP_LABELS,
  tcpLabels,
} from '../src/labels.js';
import { PRODUCTPAGE, PRODUCTPAGE_PEER, REVIEWS, REVIEWS_PEER, record } from './records.js';

/** Istio's standard labels, exactly as its stats filter fills them for each reporter. */
describe('standard labels', () => {
  it('client proxy (reporter=source): itself as source, the callee from peer metadata', () => {
    const labels = httpLabels(PRODUCTPAGE, record());
    expect(labels).toEqual({
      reporter: 'source',
      source_workload: 'productpage-v1',
      source_workload_namespace: 'default',
      source_principal: 'unknown',
      source_app: 'productpage',
      source_version: 'v1',
      source_canonical_service: 'productpage',
      source_canonical_revision: 'v1',
      source_cluster: 'Kubernetes',
      destination_workload: 'reviews-v2',
      destination_workload_namespace: 'default',
      destination_principal: 'unknown',
      destination_app: 'reviews',
      destination_version: 'v2',
      destination_service: 'reviews.default.svc.cluster.local',
      destination_service_name: 'reviews',
      destination_service_namespace: 'default',
      destination_canonical_service: 'reviews-canonical',
      destination_canonical_revision: 'r2',
      destination_cluster: 'Kubernetes',
      request_protocol: 'http',
      response_code: '200',
      grpc_response_status: '',
      response_flags: '-',
      connection_security_policy: 'unknown',
    });
    expect(Object.keys(labels).sort()).toEqual([...HTTP_LABELS].sort());
  });

  it('server proxy (reporter=destination): itself as destination, the caller from peer metadata, principals under mTLS', () => {
    const labels = httpLabels(
      REVIEWS,
      record({
        direction: 'inbound',
        upstreamCluster: 'inbound|9080||',
        peer: PRODUCTPAGE_PEER,
        connectionSecurityPolicy: 'mutual_tls',
        sourcePrincipal: 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage',
        headers: { 'content-type': 'application/grpc' },
        grpcStatus: '14',
        responseCode: 200,
      }),
    );
    expect(labels).toEqual({
      reporter: 'destination',
      source_workload: 'productpage-v1',
      source_workload_namespace: 'default',
      source_principal: 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage',
      source_app: 'productpage',
      source_version: 'v1',
      source_canonical_service: 'productpage',
      source_canonical_revision: 'v1',
      source_cluster: 'Kubernetes',
      destination_workload: 'reviews-v2',
      destination_workload_namespace: 'default',
      destination_principal: 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews',
      destination_app: 'reviews',
      destination_version: 'v2',
      destination_service: 'reviews.default.svc.cluster.local',
      destination_service_name: 'reviews',
      destination_service_namespace: 'default',
      destination_canonical_service: 'reviews-canonical',
      destination_canonical_revision: 'r2',
      destination_cluster: 'Kubernetes',
      request_protocol: 'grpc',
      response_code: '200',
      grpc_response_status: '14',
      response_flags: '-',
      connection_security_policy: 'mutual_tls',
    });
  });

  it('an unmeshed caller and a callee without a sidecar are unknown; aborted requests keep their flags', () => {
    const inbound = httpLabels(
      REVIEWS,
      record({ direction: 'inbound', peer: undefined, upstreamCluster: 'inbound|9080||' }),
    );
    expect(inbound).toMatchObject({
      source_workload: 'unknown',
      source_workload_namespace: 'unknown',
      source_app: 'unknown',
      source_canonical_service: 'unknown',
      source_canonical_revision: 'unknown',
      source_principal: 'unknown',
      connection_security_policy: 'none',
    });
    const aborted = httpLabels(
      PRODUCTPAGE,
      record({ peer: undefined, responseCode: 503, responseFlags: 'UO', upstreamHost: undefined }),
    );
    expect(aborted).toMatchObject({
      destination_workload: 'unknown',
      destination_canonical_service: 'unknown',
      destination_service: 'reviews.default.svc.cluster.local',
      response_code: '503',
      response_flags: 'UO',
    });
  });

  it('destination_service from cluster names, passthrough authorities and the host header fallback', () => {
    expect(
      destinationService({
        cluster: 'outbound|9080||details.default.svc.cluster.local',
        hostHeaderFallback: false,
      }),
    ).toEqual({
      service: 'details.default.svc.cluster.local',
      name: 'details',
      namespace: 'default',
    });
    expect(
      destinationService({ cluster: 'outbound|443||api.example.com', hostHeaderFallback: false }),
    ).toEqual({
      service: 'api.example.com',
      name: 'api.example.com',
      namespace: 'unknown',
    });
    expect(
      destinationService({
        cluster: 'PassthroughCluster',
        authority: 'httpbin.org:80',
        hostHeaderFallback: true,
      }),
    ).toEqual({
      service: 'httpbin.org',
      name: 'PassthroughCluster',
      namespace: 'unknown',
    });
    // REGISTRY_ONLY's block_all route (a 502 with no cluster) is counted as BlackHoleCluster, as Istio's stats filter does.
    expect(
      destinationService({ route: 'block_all', authority: 'unknown.example.org', hostHeaderFallback: true }),
    ).toEqual({ service: 'BlackHoleCluster', name: 'BlackHoleCluster', namespace: 'unknown' });
    expect(
      destinationService({ cluster: 'inbound|9080||', authority: 'reviews:9080', hostHeaderFallback: false })
        .service,
    ).toBe('unknown');
    expect(
      destinationService({ cluster: 'svc', authority: 'svc:9080', hostHeaderFallback: true }).service,
    ).toBe('svc');
  });

  it('canonical service and revision: canonical labels, else app/version, else workload/latest', () => {
    expect(
      canonicalService({ workload: 'w', labels: { 'service.istio.io/canonical-name': 'c', app: 'a' } }),
    ).toBe('c');
    expect(canonicalService({ workload: 'w', labels: { 'app.kubernetes.io/name': 'k', app: 'a' } })).toBe(
      'k',
    );
    expect(canonicalService({ workload: 'w', labels: { app: 'a' } })).toBe('a');
    expect(canonicalService({ workload: 'w', labels: {} })).toBe('w');
    expect(canonicalRevision({ labels: { 'service.istio.io/canonical-revision': 'r', version: 'v' } })).toBe(
      'r',
    );
    expect(canonicalRevision({ labels: { version: 'v' } })).toBe('v');
    expect(canonicalRevision({ labels: {} })).toBe('latest');
  });

  it('TCP labels carry request_protocol=tcp and no response code', () => {
    const labels = tcpLabels(PRODUCTPAGE, {
      direction: 'outbound',
      listener: '0.0.0.0_27017',
      upstreamCluster: 'outbound|27017||mongo.default.svc.cluster.local',
      downstreamRemoteAddress: '127.0.0.1:1',
      downstreamLocalAddress: '127.0.0.1:2',
      startTime: new Date(),
      durationMs: 1,
      receivedBytes: 1,
      sentBytes: 2,
      responseFlags: '-',
      connectionSecurityPolicy: 'none',
    });
    expect(Object.keys(labels).sort()).toEqual([...TCP_LABELS].sort());
    expect(labels).toMatchObject({
      reporter: 'source',
      request_protocol: 'tcp',
      destination_service_name: 'mongo',
    });
  });

  it('TCP over mutual TLS: the server names its caller by certificate (and workload), the client its upstream by endpoint metadata', () => {
    const base = {
      listener: 'l',
      upstreamCluster: 'outbound|9080||reviews.default.svc.cluster.local',
      downstreamRemoteAddress: '127.0.0.1:1',
      downstreamLocalAddress: '127.0.0.1:2',
      startTime: new Date(),
      durationMs: 1,
      receivedBytes: 1,
      sentBytes: 2,
      responseFlags: '-',
      connectionSecurityPolicy: 'mutual_tls',
    } as const;
    const outbound = tcpLabels(PRODUCTPAGE, {
      ...base,
      direction: 'outbound',
      upstreamHost: '127.0.0.1:15006',
      peer: REVIEWS_PEER,
      destinationPrincipal: 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews',
    });
    expect(outbound).toMatchObject({
      reporter: 'source',
      source_workload: 'productpage-v1',
      source_principal: 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage',
      destination_workload: 'reviews-v2',
      destination_canonical_service: 'reviews-canonical',
      destination_principal: 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews',
      destination_service_name: 'reviews',
      connection_security_policy: 'unknown',
    });
    const inbound = tcpLabels(REVIEWS, {
      ...base,
      direction: 'inbound',
      upstreamCluster: 'inbound|9080||',
      peer: PRODUCTPAGE_PEER,
      sourcePrincipal: 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage',
    });
    expect(inbound).toMatchObject({
      reporter: 'destination',
      source_workload: 'productpage-v1',
      source_app: 'productpage',
      source_principal: 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage',
      destination_workload: 'reviews-v2',
      destination_principal: 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews',
      destination_service_name: 'reviews',
      connection_security_policy: 'mutual_tls',
    });
    // A caller whose identity no single workload runs as: its principal and namespace, nothing invented.
    const anonymous = tcpLabels(REVIEWS, {
      ...base,
      direction: 'inbound',
      upstreamCluster: 'inbound|9080||',
      sourcePrincipal: 'spiffe://cluster.local/ns/shop/sa/shared',
    });
    expect(anonymous).toMatchObject({
      source_workload: 'unknown',
      source_workload_namespace: 'shop',
      source_principal: 'spiffe://cluster.local/ns/shop/sa/shared',
    });
    // Plaintext: no principals on either side.
    expect(
      tcpLabels(REVIEWS, {
        ...base,
        direction: 'inbound',
        upstreamCluster: 'inbound|9080||',
        connectionSecurityPolicy: 'none',
        sourcePrincipal: 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage',
      }),
    ).toMatchObject({ source_principal: 'unknown', destination_principal: 'unknown' });
  });
});
