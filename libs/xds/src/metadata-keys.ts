/**
 * Metadata keys pilot and the proxies agree on beyond Envoy's own fields.
 * They sit in `filter_metadata`, which Envoy keeps and ignores, so a config
 * carrying them is still one Envoy accepts.
 */

/**
 * Cluster metadata: hosts of this cluster that run a sidecar (endpoint
 * metadata `tlsMode: istio`) are spoken to over HTTP/2, whatever protocol the
 * cluster speaks to other hosts — Mizzen's sidecars multiplex between
 * themselves (the mesh's h2UpgradePolicy). Its value is
 * `{ http2_protocol_options: { max_concurrent_streams? } }`, the HTTP/2
 * options for those connections. Absent: no upgrade (DestinationRule
 * h2UpgradePolicy DO_NOT_UPGRADE, useClientProtocol, or a sniffed port).
 */
export const SIDECAR_H2_UPGRADE_KEY = 'mizzen.sidecar_h2_upgrade';
