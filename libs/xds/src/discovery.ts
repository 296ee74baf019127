import { decodeMessage, encodeMessage } from './json.js';
import { messageType } from './protos.js';

/** The Envoy `Node` a proxy identifies itself with (proto field names; metadata is plain JSON). */
export interface XdsNode {
  id: string;
  cluster?: string;
  metadata?: Record<string, unknown>;
  locality?: { region?: string; zone?: string; sub_zone?: string };
  user_agent_name?: string;
  user_agent_version?: string;
}

export interface DiscoveryRequest {
  version_info?: string;
  node?: XdsNode;
  resource_names?: string[];
  type_url: string;
  response_nonce?: string;
  error_detail?: { code?: number; message?: string };
}

export interface DiscoveryResponse {
  version_info: string;
  resources: { type_url: string; value: Uint8Array }[];
  type_url: string;
  nonce: string;
  control_plane?: { identifier: string };
}

const REQUEST = 'envoy.service.discovery.v3.DiscoveryRequest';
const RESPONSE = 'envoy.service.discovery.v3.DiscoveryResponse';

export const ADS_METHOD = '/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources';
export const DELTA_ADS_METHOD =
  '/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources';

export function encodeRequest(req: DiscoveryRequest): Buffer {
  return Buffer.from(encodeMessage(REQUEST, req));
}

export function decodeRequest(bytes: Buffer): DiscoveryRequest {
  return decodeMessage(REQUEST, bytes) as DiscoveryRequest;
}

export function encodeResponse(res: DiscoveryResponse): Buffer {
  return Buffer.from(encodeMessage(RESPONSE, res));
}

/** Decodes a response keeping each resource as raw Any bytes; the client decodes (and can NACK) them one by one. */
export function decodeResponse(bytes: Buffer): DiscoveryResponse {
  const msg = messageType(RESPONSE).decode(bytes) as unknown as Partial<DiscoveryResponse>;
  return {
    version_info: msg.version_info ?? '',
    type_url: msg.type_url ?? '',
    nonce: msg.nonce ?? '',
    resources: (msg.resources ?? []).map((r) => ({ type_url: r.type_url, value: r.value })),
  };
}
