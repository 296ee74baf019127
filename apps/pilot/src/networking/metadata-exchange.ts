import type { Json } from './envoy.js';
import { TYPED_STRUCT_TYPE } from './telemetry.js';

/**
 * Istio's TCP metadata exchange, as pilot configures it: the
 * `istio.metadata_exchange` network filter first on a sidecar's inbound TCP
 * chains, whose mutual-TLS context offers `istio-peer-exchange`; the same
 * filter on outbound clusters that TCP reaches sidecars through, whose mesh
 * TLS offers that ALPN first. Two sidecars that agree on it exchange their
 * workload metadata at the start of the connection, so each side's TCP
 * metrics name the other workload even when several share a service account.
 */

const PEER_EXCHANGE_ALPN = 'istio-peer-exchange';
const METADATA_EXCHANGE_TYPE = 'type.googleapis.com/envoy.tcp.metadataexchange.config.MetadataExchange';
const MX_FILTER_NAME = 'istio.metadata_exchange';

/** Istio's ALPN for in-mesh TCP clusters with the exchange (`util.ALPNInMeshWithMxc`). */
export const ALPN_IN_MESH_WITH_MX = [PEER_EXCHANGE_ALPN, 'istio'];

/** Istio's ALPN for inbound TCP chains over mutual TLS with the exchange (`util.ALPNDownstreamWithMxc`). */
export const ALPN_DOWNSTREAM_WITH_MX = [PEER_EXCHANGE_ALPN, 'h2', 'http/1.1'];

/** Istio's filter (`xdsfilters.tcpMx`): its config in a TypedStruct, as Istio sends it. */
function metadataExchangeFilter(): Json {
  return {
    name: MX_FILTER_NAME,
    typed_config: {
      '@type': TYPED_STRUCT_TYPE,
      type_url: METADATA_EXCHANGE_TYPE,
      value: { protocol: PEER_EXCHANGE_ALPN, enable_discovery: true },
    },
  };
}

/** The network filter first on a sidecar's inbound TCP chains (`xdsfilters.TCPListenerMx`). */
export const listenerMetadataExchange = metadataExchangeFilter;

/** The upstream network filter of an outbound cluster (`xdsfilters.TCPClusterMx`). */
export const clusterMetadataExchange = metadataExchangeFilter;
