import type { HttpRequestRecord, PeerMetadata } from '@mizzen/proxy';
import type { LocalProxy } from '../src/labels.js';

/** Records as the proxy hands them to observers (see libs/proxy/test/observe.test.ts). */

export const PRODUCTPAGE: LocalProxy = {
  identity: {
    workload: 'productpage-v1',
    namespace: 'default',
    labels: { app: 'productpage', version: 'v1', 'security.istio.io/tlsMode': 'istio' },
    serviceAccount: 'bookinfo-productpage',
    clusterId: 'Kubernetes',
  },
  trustDomain: 'cluster.local',
  inboundService: 'productpage.default.svc.cluster.local',
};

export const REVIEWS: LocalProxy = {
  identity: {
    workload: 'reviews-v2',
    namespace: 'default',
    labels: {
      app: 'reviews',
      version: 'v2',
      'service.istio.io/canonical-name': 'reviews-canonical',
      'service.istio.io/canonical-revision': 'r2',
    },
    serviceAccount: 'bookinfo-reviews',
    clusterId: 'Kubernetes',
  },
  trustDomain: 'cluster.local',
  inboundService: 'reviews.default.svc.cluster.local',
};

export const REVIEWS_PEER: PeerMetadata = {
  id: 'sidecar~127.0.0.1~reviews-v2.default~default.svc.cluster.local',
  workload: 'reviews-v2',
  namespace: 'default',
  serviceAccount: 'bookinfo-reviews',
  labels: REVIEWS.identity.labels,
  clusterId: 'Kubernetes',
};

export const PRODUCTPAGE_PEER: PeerMetadata = {
  id: 'sidecar~127.0.0.1~productpage-v1.default~default.svc.cluster.local',
  workload: 'productpage-v1',
  namespace: 'default',
  serviceAccount: 'bookinfo-productpage',
  labels: { app: 'productpage', version: 'v1' },
  clusterId: 'Kubernetes',
};

export function record(overrides: Partial<HttpRequestRecord> = {}): HttpRequestRecord {
  return {
    direction: 'outbound',
    listener: '0.0.0.0_9080',
    method: 'GET',
    authority: 'reviews:9080',
    path: '/reviews/0?x=1',
    scheme: 'http',
    protocol: 'HTTP/1.1',
    headers: { 'user-agent': 'curl/8', 'x-request-id': 'req-1', 'x-user': 'jason' },
    downstreamRemoteAddress: '127.0.0.1:50000',
    downstreamLocalAddress: '127.0.0.1:15001',
    startTime: new Date('2025-01-02T03:04:05.678Z'),
    durationMs: 12.4,
    responseCode: 200,
    responseHeaders: { 'content-type': 'application/json' },
    responseFlags: '-',
    requestBytes: 0,
    responseBytes: 345,
    routeName: 'default',
    upstreamCluster: 'outbound|9080|v2|reviews.default.svc.cluster.local',
    upstreamHost: '127.0.0.1:15006',
    upstreamServiceTimeMs: 10.2,
    attempts: 1,
    peer: REVIEWS_PEER,
    connectionSecurityPolicy: 'none',
    ...overrides,
  };
}
