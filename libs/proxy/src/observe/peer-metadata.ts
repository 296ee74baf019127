import { decodeMessage, encodeMessage, type XdsNode } from '@mizzen/xds';
import type { HeaderMap } from '../config/headers.js';
import type { PeerMetadata } from './records.js';

/** Istio's metadata-exchange headers: sidecars tell each other who they are on every request and response. */
export const PEER_ID_HEADER = 'x-envoy-peer-metadata-id';
export const PEER_METADATA_HEADER = 'x-envoy-peer-metadata';

const STRUCT = 'google.protobuf.Struct';

/** This proxy's identity as the two headers carry it: base64 of a protobuf Struct, exactly as Istio's proxies encode it. */
export function encodePeerHeaders(node: XdsNode): { id: string; metadata: string } {
  const md = node.metadata ?? {};
  const pick: Record<string, unknown> = {};
  for (const key of [
    'NAME',
    'NAMESPACE',
    'LABELS',
    'WORKLOAD_NAME',
    'SERVICE_ACCOUNT',
    'CLUSTER_ID',
    'ISTIO_VERSION',
    'INSTANCE_IPS',
  ]) {
    if (md[key] !== undefined) pick[key] = md[key];
  }
  if (pick.NAME === undefined) pick.NAME = node.id.split('~')[2]?.split('.')[0];
  return { id: node.id, metadata: Buffer.from(encodeMessage(STRUCT, pick)).toString('base64') };
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
    const labels = (md.LABELS && typeof md.LABELS === 'object' ? md.LABELS : {}) as Record<string, string>;
    const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined);
    return {
      id: typeof id === 'string' ? id : '',
      name: str(md.NAME),
      namespace: str(md.NAMESPACE),
      workload: str(md.WORKLOAD_NAME),
      serviceAccount: str(md.SERVICE_ACCOUNT),
      labels,
      clusterId: str(md.CLUSTER_ID),
    };
  } catch {
    return undefined;
  }
}
