export { AdsClient, type AdsClientOptions, type AdsClientStatus } from './ads-client.js';
export {
  AdsServer,
  type AdsServerOptions,
  type StreamStatus,
  type SyncState,
  type TypeStatus,
} from './ads-server.js';
export {
  CaClient,
  CaClientError,
  type CaClientOptions,
  type CreateCertificateOptions,
} from './ca-client.js';
export {
  CA_SERVICE_NAME,
  CREATE_CERTIFICATE_METHOD,
  type CreateCertificateHandler,
  createCertificateMethod,
  decodeCertificateRequest,
  decodeCertificateResponse,
  encodeCertificateRequest,
  encodeCertificateResponse,
  ISTIO_CA_PROTO,
  type IstioCertificateRequest,
  type IstioCertificateResponse,
  type IstioCertificateServiceHandlers,
  istioCertificateService,
  type JsonValue,
  PROTOS_DIR,
} from './ca-service.js';
export {
  type AnyMessage,
  contentVersion,
  type DecodedResource,
  decodeResource,
  type EncodedResource,
  encodeResource,
} from './codec.js';
export type { DiscoveryRequest, DiscoveryResponse, XdsNode } from './discovery.js';
export { durationToMs, msToDuration } from './duration.js';
export {
  AUTHORIZATION_SERVICE,
  type AuthorizationServerOptions,
  authorizationCheckMethod,
  type CheckCall,
  type CheckHandler,
  type EnvoyUnaryMethod,
  envoyUnaryMethod,
  GrpcCallError,
  serveAuthorization,
  UnaryChannel,
  type UnaryChannelTarget,
} from './envoy-grpc.js';
export {
  decodeMessage,
  EnvoyJsonError,
  encodeMessage,
  type FieldNames,
  formatDuration,
  fromJson,
  parseDurationJson,
  toJson,
} from './json.js';
export { SIDECAR_H2_UPGRADE_KEY } from './metadata-keys.js';
export {
  decodeOtlpRequest,
  decodeOtlpResponse,
  decodeRpcStatus,
  encodeOtlpRequest,
  encodeOtlpResponse,
  encodeRpcStatus,
  OTLP_GRPC_METHODS,
  OtlpDecodeError,
  type OtlpSignal,
} from './otlp.js';
export { type OtlpTraceReceiver, type ReceivedSpan, startOtlpTraceReceiver } from './otlp-receiver.js';
export { envoyRoot, isKnownType, messageType, typeNameOf, typeUrlOf } from './protos.js';
export {
  FILE_CERT_PREFIX,
  FILE_ROOT_PREFIX,
  fileCertSecretName,
  fileRootSecretName,
  fileSecretPaths,
  isFileSecretName,
} from './sds-names.js';
export { type ResourceSet, Snapshot, type TypeSnapshot } from './snapshot.js';
export {
  isTypeUrl,
  PUSH_ORDER,
  resourceName,
  type ShortType,
  shortType,
  TypeUrl,
  WILDCARD_TYPES,
} from './type-urls.js';
