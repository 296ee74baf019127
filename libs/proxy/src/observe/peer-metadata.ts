import { decodeMessage, encodeMessage, type XdsNode } from '@mizzen/xds';
import type { HeaderMap } from '../config/headers.js';
import type { PeerMetadata } from './records.js';

/** Istio's metadata-exchange headers: sidecars tell each other who they are on every request and response. */
export const PEER_ID_HEADER = 'x-envoy-peer-metadata-id';
export const PEER_METADATA_HEADER = 'x-envoy-peer-metadata';

const STRUCT = 'google.protobuf.Struct';

/** The node metadata keys a proxy tells its peers (Istio's exchanged workload metadata). */
const EXCHANGED_KEYS = [
  'NAME',
  'NAMESPACE',
  'LABELS',
  'WORKLOAD_NAME',
  'SERVICE_ACCOUNT',
  'CLUSTER_ID',
  'ISTIO_VERSION',
  'INSTANCE_IPS',
] as const;

/**
 * What this proxy tells its peers about itself, as a Struct's JSON: its
 * node metadata's workload keys (NAME from the node id when unset). Both
 * exchanges carry it: `x-envoy-peer-metadata` on HTTP, the TCP metadata
 * exchange's header on mutual-TLS connections.
 */
export function peerMetadataStruct(node: XdsNode): Record<string, unknown> {
  const md = node.metadata ?? {};
  const pick: Record<string, unknown> = {};
  for (const key of EXCHANGED_KEYS) if (md[key] !== undefined) pick[key] = md[key];
  if (pick.NAME === undefined) pick.NAME = node.id.split('~')[2]?.split('.')[0];
  return pick;
}

/** A peer's exchanged metadata (a Struct's JSON) as the workload it names; `id` is its node id. */
export function peerFromStruct(md: Record<string, unknown>, id: string): PeerMetadata {
  const labels: Record<string, string> = {};
  if (md.LABELS && typeof md.LABELS === 'object' && !Array.isArray(md.LABELS))
    for (const [k, v] of Object.entries(md.LABELS as Record<string, unknown>)) labels[k] = String(v);
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
  return {
    id,
    name: str(md.NAME),
    namespace: str(md.NAMESPACE),
    workload: str(md.WORKLOAD_NAME),
    serviceAccount: str(md.SERVICE_ACCOUNT),
    labels,
    clusterId: str(md.CLUSTER_ID),
  };
}

/** This proxy's identity as the two headers carry it: base64 of a protobuf Struct, exactly as Istio's proxies encode it. */
export function encodePeerHeaders(node: XdsNode): { id: string; metadata: string } {
  const metadata = Buffer.from(encodeMessage(STRUCT, peerMetadataStruct(node))).toString('base64');
  return { id: node.id, metadata };
}

/** Reads and removes a peer's metadata headers; undefined when absent or unreadable (never trusted for security). */
export function takePeerHeaders(headers: HeaderMap): PeerMetadata | undefined {
  const id = headers[PEER_ID_HEADER];
  const raw = headers[PEER_METADATA_HEADER];
  delete headers[PEER_ID_HEADER];
  delete headers[PEER_METADATA_HEADER];
  if (typeof raw !== 'string') return undefined;
  try {
    const md = decodeMessage(STRUCT, Buffer.from(raw, 'base64')) as Record<string, unknown>;
    return peerFromStruct(md, typeof id === 'string' ? id : '');
  } catch {
    return undefined;
  }
}

/** Istio's default cluster id (`CLUSTER_ID`), when an endpoint's metadata leaves it empty. */
const DEFAULT_CLUSTER_ID = 'Kubernetes';

/** Who runs behind an endpoint, as pilot's EDS metadata says (no metadata exchange needed to know it). */
export interface EndpointIdentity {
  readonly peer: PeerMetadata;
  /** The SPIFFE identity its workload runs as (`spiffe://…/ns/…/sa/…`), when pilot knows it. */
  readonly principal?: string;
}

/**
 * An endpoint's workload from its `filter_metadata.istio`: Istio's
 * `workload: "<name>;<namespace>;<canonical service>;<canonical revision>;<cluster>"`
 * (what Istio's stats filter falls back to when a peer sent no metadata),
 * with pilot's `labels` and `principal` when present. Undefined without it.
 */
export function endpointIdentity(
  istio: Readonly<Record<string, unknown>> | undefined,
): EndpointIdentity | undefined {
  const raw = istio?.workload;
  if (typeof raw !== 'string' || raw === '') return undefined;
  const [workload, namespace, canonicalService, canonicalRevision, clusterId] = raw.split(';');
  if (!workload) return undefined;
  const labels: Record<string, string> = {};
  if (istio?.labels && typeof istio.labels === 'object')
    for (const [k, v] of Object.entries(istio.labels as Record<string, unknown>)) labels[k] = String(v);
  // The canonical names travel in the workload string; labels carry them for the peer's label logic.
  if (canonicalService && !labels['service.istio.io/canonical-name'])
    labels['service.istio.io/canonical-name'] = canonicalService;
  if (canonicalRevision && !labels['service.istio.io/canonical-revision'])
    labels['service.istio.io/canonical-revision'] = canonicalRevision;
  const principal = typeof istio?.principal === 'string' && istio.principal ? istio.principal : undefined;
  const serviceAccount = principal ? /\/sa\/([^/]+)$/.exec(principal)?.[1] : undefined;
  return {
    peer: {
      id: '',
      name: workload,
      workload,
      ...(namespace ? { namespace } : {}),
      ...(serviceAccount ? { serviceAccount } : {}),
      labels,
      clusterId: clusterId || DEFAULT_CLUSTER_ID,
    },
    ...(principal ? { principal } : {}),
  };
}
