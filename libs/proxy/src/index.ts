export { AppliedConfig } from './agent/applied-config.js';
export { ConfigApplier } from './agent/config-applier.js';
export { MeshProxy, type ProxyOptions } from './agent/proxy.js';
export {
  CERTIFICATE_FLAGS,
  FlagError,
  LOCALITY_FLAG,
  NETWORK_FLAG,
  parseAddress,
  parseCaptureMode,
  parseCertificateFlags,
  parseCertKeyType,
  parseIp,
  parseLabels,
  parseLocality,
  parseName,
  parseNetwork,
  parsePort,
  parsePortMap,
  parsePortSpec,
} from './bootstrap/flags.js';
export {
  EASTWEST_GATEWAY,
  EGRESS_GATEWAY,
  type GatewayDefaults,
  type GatewayTelemetry,
  INGRESS_GATEWAY,
  runGatewayApp,
} from './bootstrap/gateway-app.js';
export {
  type GatewayIdentity,
  gatewayNode,
  gatewayServicePort,
  nodeId,
  type SidecarIdentity,
  sidecarNode,
  type WorkloadPortSpec,
} from './bootstrap/node.js';
export { rateLimitsFromEnvironment } from './bootstrap/rate-limits.js';
export { type ParsedFlags, runProxyApp } from './bootstrap/run.js';
export { compileCluster, compileLoadAssignment } from './config/cluster.js';
export { ConfigError } from './config/errors.js';
export { compileListener } from './config/listener.js';
export { findRoute, RouteTable } from './config/route-table.js';
export { compileAccessLogs, compileStatsConfig, compileTracing } from './config/telemetry.js';
export type { FilterServices } from './http/filters/services.js';
export { type CaptureMode, ListenerManager } from './listeners/listener-manager.js';
export {
  type EndpointIdentity,
  encodePeerHeaders,
  endpointIdentity,
  PEER_ID_HEADER,
  PEER_METADATA_HEADER,
  peerFromStruct,
  peerMetadataStruct,
  takePeerHeaders,
} from './observe/peer-metadata.js';
export {
  type AccessLogFormat,
  type AccessLogSettings,
  type AccessLogSink,
  type CustomTag,
  combineObservers,
  type HttpObservation,
  type HttpRequestRecord,
  type HttpRequestStart,
  type HttpTelemetryConfig,
  type MetricOverrideSettings,
  type PeerMetadata,
  type ProxyObserver,
  type StatsSettings,
  type TcpConnectionRecord,
  type TcpConnectionStart,
  type TcpObservation,
  type TcpTelemetryConfig,
  type TracingProvider,
  type TracingSettings,
  type TrafficDirection,
} from './observe/records.js';
export {
  decodeExchangePayload,
  EXCHANGE_MAGIC,
  ExchangeHeaderReader,
  type ExchangeRead,
  encodeExchangeHeader,
  PEER_EXCHANGE_PROTOCOL,
} from './observe/tcp-metadata-exchange.js';
export { type CertStatus, WORKLOAD_SECRET, WorkloadCertManager } from './security/cert-manager.js';
export { type Secret, SecretStore } from './security/secret-store.js';
export { ClusterManager } from './upstream/cluster-manager.js';
export { ConnectionPools } from './upstream/connection-pools.js';
export { LoadBalancer } from './upstream/load-balancer.js';
