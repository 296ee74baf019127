/**
 * @mizzen/api — Istio resource types, defaults and validation: the one place
 * that knows the YAML API (networking.istio.io v1/v1beta1/v1alpha3,
 * security.istio.io v1/v1beta1, telemetry.istio.io v1/v1alpha1) and Mizzen's own
 * policy.mizzen.io/v1alpha1 RateLimitPolicy, plus the config sources that load it.
 */

export { isValidDuration, parseDuration } from './duration.js';
export { formatIssue, formatPath, type PathSegment, type ValidationIssue } from './issues.js';
export { specJsonSchema } from './json-schema.js';
export type {
  AuthorizationAction,
  AuthorizationPolicySpec,
  AuthorizationRule,
  Condition,
  ExtensionProvider,
  Operation,
  RuleFrom,
  RuleTo,
  Source,
} from './kinds/authorization-policy.js';
export type {
  ClientTLSSettings,
  ConnectionPoolSettings,
  ConsistentHashLB,
  DestinationRuleSpec,
  HTTPCookie,
  HTTPSettings,
  LoadBalancerSettings,
  LocalityLoadBalancerSetting,
  OutlierDetection,
  PortTrafficPolicy,
  ProxyProtocol,
  RetryBudget,
  SimpleLB,
  Subset,
  TCPKeepalive,
  TCPSettings,
  TrafficPolicy,
  TunnelSettings,
  WarmupConfiguration,
} from './kinds/destination-rule.js';
export type {
  GatewaySpec,
  Port,
  Server,
  ServerTLSMode,
  ServerTLSSettings,
  TLSCertificate,
  TLSProtocol,
} from './kinds/gateway.js';
export type {
  MutualTLSMode,
  PeerAuthenticationMutualTLS,
  PeerAuthenticationSpec,
} from './kinds/peer-authentication.js';
export {
  DESCRIPTOR_KINDS,
  RATE_LIMIT_UNITS,
  type RateLimitAmount,
  type RateLimitDescriptor,
  type RateLimitFailureMode,
  type RateLimitMatch,
  type RateLimitMode,
  type RateLimitPolicySpec,
  type RateLimitRule,
  type RateLimitUnit,
  rateLimitRuleName,
} from './kinds/rate-limit-policy.js';
export type {
  ClaimToHeader,
  JWTHeader,
  JWTRule,
  RequestAuthenticationSpec,
} from './kinds/request-authentication.js';
export type { LabelSelector, PolicyTargetReference } from './kinds/selectors.js';
export type {
  ServiceEntryLocation,
  ServiceEntryResolution,
  ServiceEntrySpec,
  ServicePort,
} from './kinds/service-entry.js';
export type {
  CaptureMode,
  IstioEgressListener,
  IstioIngressListener,
  OutboundTrafficPolicy,
  SidecarPort,
  SidecarSpec,
} from './kinds/sidecar.js';
export type {
  AccessLogging,
  AccessLoggingFilter,
  MetricName,
  MetricSelector,
  Metrics,
  MetricsOverrides,
  ProviderRef,
  TagOverride,
  TelemetrySpec,
  Tracing,
  TracingCustomTag,
  TracingSelector,
  WorkloadMode,
} from './kinds/telemetry.js';
export {
  type CorsPolicy,
  type Delegate,
  type Destination,
  type HeaderOperations,
  type Headers,
  type HTTPBody,
  type HTTPDirectResponse,
  type HTTPFaultAbort,
  type HTTPFaultDelay,
  type HTTPFaultInjection,
  type HTTPMatchRequest,
  type HTTPMirrorPolicy,
  type HTTPRedirect,
  type HTTPRetry,
  type HTTPRewrite,
  type HTTPRoute,
  type HTTPRouteDestination,
  type L4MatchAttributes,
  type Percent,
  type PortSelector,
  RETRY_ON,
  type RegexRewrite,
  type RouteDestination,
  type StringMatch,
  type TCPRoute,
  type TLSMatchAttributes,
  type TLSRoute,
  type VirtualServiceSpec,
} from './kinds/virtual-service.js';
export type { WorkloadEntrySpec, WorkloadSelector } from './kinds/workload-entry.js';
export {
  type LocatedResource,
  type ParseResult,
  parseConfig,
  parseConfigLocated,
  type ResourceRef,
} from './parse.js';
export {
  apiVersionsFor,
  type ConfigResource,
  configKey,
  type Group,
  isKind,
  KIND_NAMES,
  KINDS,
  type Kind,
  type KindInfo,
  type ObjectMeta,
  resolveKind,
  type SpecByKind,
  type SpecFor,
} from './resource.js';
export type { ConfigSource } from './sources/config-source.js';
export { DirectorySource, type DirectorySourceOptions } from './sources/directory-source.js';
export {
  type ApplyOutcome,
  type DeleteOutcome,
  FileStore,
  type FileStoreOptions,
  type ResourceIdentity,
} from './sources/file-store.js';
export { stableJson } from './sources/stable-json.js';
export type { RawIssue } from './validation/checker.js';
export { exportToProblems } from './validation/names.js';
export { checkResource, type ResourceCheck } from './validation/resource.js';
