/**
 * Istio's analyzer message types (pkg/config/analysis/msg/messages.yaml):
 * the code, name and level istioctl prints, and each message's text as
 * Istio's template renders it, so output reads exactly as `istioctl analyze`.
 */

export type Level = 'Error' | 'Warning' | 'Info';

export interface MessageType {
  code: string;
  name: string;
  level: Level;
}

/** The resource a message is about: `VirtualService default/reviews`. */
export interface Origin {
  kind: string;
  namespace: string;
  name: string;
}

export interface AnalysisMessage {
  type: MessageType;
  /** Unset only for a problem no resource can be named for (a document without kind or name). */
  origin?: Origin;
  /** Where the resource came from, `file.yaml:12`, when it came from a file. */
  reference?: string;
  /** The message as Istio's template renders it. */
  text: string;
  /** IST0101 host+subset: the host concerned, so a change to its DestinationRules concerns the message too. */
  host?: string;
}

const type = (code: string, name: string, level: Level): MessageType => ({ code, name, level });

/** Every message type Mizzen's analyzers report, by Istio's name. */
export const MESSAGE_TYPES = {
  ReferencedResourceNotFound: type('IST0101', 'ReferencedResourceNotFound', 'Error'),
  SchemaValidationError: type('IST0106', 'SchemaValidationError', 'Error'),
  UnknownAnnotation: type('IST0108', 'UnknownAnnotation', 'Warning'),
  ConflictingMeshGatewayVirtualServiceHosts: type(
    'IST0109',
    'ConflictingMeshGatewayVirtualServiceHosts',
    'Error',
  ),
  ConflictingSidecarWorkloadSelectors: type('IST0110', 'ConflictingSidecarWorkloadSelectors', 'Error'),
  MultipleSidecarsWithoutWorkloadSelectors: type(
    'IST0111',
    'MultipleSidecarsWithoutWorkloadSelectors',
    'Error',
  ),
  NoMatchingWorkloadsFound: type('IST0127', 'NoMatchingWorkloadsFound', 'Warning'),
  NoServerCertificateVerificationDestinationLevel: type(
    'IST0128',
    'NoServerCertificateVerificationDestinationLevel',
    'Warning',
  ),
  NoServerCertificateVerificationPortLevel: type(
    'IST0129',
    'NoServerCertificateVerificationPortLevel',
    'Warning',
  ),
  VirtualServiceUnreachableRule: type('IST0130', 'VirtualServiceUnreachableRule', 'Warning'),
  VirtualServiceIneffectiveMatch: type('IST0131', 'VirtualServiceIneffectiveMatch', 'Info'),
  VirtualServiceHostNotFoundInGateway: type('IST0132', 'VirtualServiceHostNotFoundInGateway', 'Warning'),
  SchemaWarning: type('IST0133', 'SchemaWarning', 'Warning'),
  ServiceEntryAddressesRequired: type('IST0134', 'ServiceEntryAddressesRequired', 'Warning'),
  ConflictingGateways: type('IST0145', 'ConflictingGateways', 'Error'),
  ConflictingTelemetryWorkloadSelectors: type('IST0159', 'ConflictingTelemetryWorkloadSelectors', 'Error'),
  MultipleTelemetriesWithoutWorkloadSelectors: type(
    'IST0160',
    'MultipleTelemetriesWithoutWorkloadSelectors',
    'Error',
  ),
} as const satisfies Record<string, MessageType>;

/** Go's %q for a string: double-quoted, with quotes and backslashes escaped. */
export function quote(s: string): string {
  return JSON.stringify(s);
}

/** Go's %v for a []string: `[a b c]`. */
export function goList(items: readonly string[]): string {
  return `[${items.join(' ')}]`;
}

/** `default/reviews`, as Istio's FullName prints. */
export function fullName(r: { metadata: { namespace: string; name: string } }): string {
  return `${r.metadata.namespace}/${r.metadata.name}`;
}

export function originOf(r: { kind: string; metadata: { namespace: string; name: string } }): Origin {
  return { kind: r.kind, namespace: r.metadata.namespace, name: r.metadata.name };
}

/** The message constructors, one per type: Istio's template filled in. */
export const msg = {
  referencedResourceNotFound: (
    origin: Origin,
    reftype: string,
    refval: string,
    host?: string,
  ): AnalysisMessage => ({
    type: MESSAGE_TYPES.ReferencedResourceNotFound,
    origin,
    text: `Referenced ${reftype} not found: ${quote(refval)}`,
    ...(host !== undefined ? { host } : {}),
  }),
  schemaValidationError: (origin: Origin | undefined, err: string): AnalysisMessage => ({
    type: MESSAGE_TYPES.SchemaValidationError,
    ...(origin ? { origin } : {}),
    text: `Schema validation error: ${err}`,
  }),
  schemaWarning: (origin: Origin | undefined, err: string): AnalysisMessage => ({
    type: MESSAGE_TYPES.SchemaWarning,
    ...(origin ? { origin } : {}),
    text: `Schema validation warning: ${err}`,
  }),
  unknownAnnotation: (origin: Origin, annotation: string): AnalysisMessage => ({
    type: MESSAGE_TYPES.UnknownAnnotation,
    origin,
    text: `Unknown annotation: ${annotation}`,
  }),
  conflictingMeshGatewayVirtualServiceHosts: (
    origin: Origin,
    virtualServices: readonly string[],
    host: string,
  ): AnalysisMessage => ({
    type: MESSAGE_TYPES.ConflictingMeshGatewayVirtualServiceHosts,
    origin,
    text: `The VirtualServices ${virtualServices.join(',')} associated with mesh gateway define the same host ${host} which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource.`,
  }),
  conflictingSidecarWorkloadSelectors: (
    origin: Origin,
    sidecars: readonly string[],
    namespace: string,
    workload: string,
  ): AnalysisMessage => ({
    type: MESSAGE_TYPES.ConflictingSidecarWorkloadSelectors,
    origin,
    text: `The Sidecars ${goList(sidecars)} in namespace ${quote(namespace)} select the same workload pod ${quote(workload)}, which can lead to undefined behavior.`,
  }),
  multipleSidecarsWithoutWorkloadSelectors: (
    origin: Origin,
    sidecars: readonly string[],
    namespace: string,
  ): AnalysisMessage => ({
    type: MESSAGE_TYPES.MultipleSidecarsWithoutWorkloadSelectors,
    origin,
    text: `The Sidecars ${goList(sidecars)} in namespace ${quote(namespace)} have no workload selector, which can lead to undefined behavior.`,
  }),
  conflictingTelemetryWorkloadSelectors: (
    origin: Origin,
    telemetries: readonly string[],
    namespace: string,
    workload: string,
  ): AnalysisMessage => ({
    type: MESSAGE_TYPES.ConflictingTelemetryWorkloadSelectors,
    origin,
    text: `The Telemetries ${goList(telemetries)} in namespace ${quote(namespace)} select the same workload pod ${quote(workload)}, which can lead to undefined behavior.`,
  }),
  multipleTelemetriesWithoutWorkloadSelectors: (
    origin: Origin,
    telemetries: readonly string[],
    namespace: string,
  ): AnalysisMessage => ({
    type: MESSAGE_TYPES.MultipleTelemetriesWithoutWorkloadSelectors,
    origin,
    text: `The Telemetries ${goList(telemetries)} in namespace ${quote(namespace)} have no workload selector, which can lead to undefined behavior.`,
  }),
  noMatchingWorkloadsFound: (origin: Origin, labels: string): AnalysisMessage => ({
    type: MESSAGE_TYPES.NoMatchingWorkloadsFound,
    origin,
    text: `No matching workloads for this resource with the following labels: ${labels}`,
  }),
  noServerCertificateVerificationDestinationLevel: (
    origin: Origin,
    mode: string,
    host: string,
  ): AnalysisMessage => ({
    type: MESSAGE_TYPES.NoServerCertificateVerificationDestinationLevel,
    origin,
    text: `DestinationRule ${origin.name} in namespace ${origin.namespace} has TLS mode set to ${mode} but no caCertificates are set to validate server identity for host: ${host}`,
  }),
  noServerCertificateVerificationPortLevel: (
    origin: Origin,
    mode: string,
    host: string,
    port: string,
  ): AnalysisMessage => ({
    type: MESSAGE_TYPES.NoServerCertificateVerificationPortLevel,
    origin,
    text: `DestinationRule ${origin.name} in namespace ${origin.namespace} has TLS mode set to ${mode} but no caCertificates are set to validate server identity for host: ${host} at port ${port}`,
  }),
  virtualServiceUnreachableRule: (origin: Origin, rule: string, reason: string): AnalysisMessage => ({
    type: MESSAGE_TYPES.VirtualServiceUnreachableRule,
    origin,
    text: `VirtualService rule ${rule} not used (${reason}).`,
  }),
  virtualServiceIneffectiveMatch: (
    origin: Origin,
    rule: string,
    match: string,
    dup: string,
  ): AnalysisMessage => ({
    type: MESSAGE_TYPES.VirtualServiceIneffectiveMatch,
    origin,
    text: `VirtualService rule ${rule} match ${match} is not used (duplicate/overlapping match in rule ${dup}).`,
  }),
  virtualServiceHostNotFoundInGateway: (
    origin: Origin,
    hosts: readonly string[],
    virtualService: string,
    gateway: string,
  ): AnalysisMessage => ({
    type: MESSAGE_TYPES.VirtualServiceHostNotFoundInGateway,
    origin,
    text: `one or more host ${goList(hosts)} defined in VirtualService ${virtualService} not found in Gateway ${gateway}.`,
  }),
  serviceEntryAddressesRequired: (origin: Origin): AnalysisMessage => ({
    type: MESSAGE_TYPES.ServiceEntryAddressesRequired,
    origin,
    text: 'ServiceEntry addresses are required for this protocol.',
  }),
  conflictingGateways: (
    origin: Origin,
    gateways: readonly string[],
    selector: string,
    port: number,
    hosts: readonly string[],
  ): AnalysisMessage => ({
    type: MESSAGE_TYPES.ConflictingGateways,
    origin,
    text: `Conflict with gateways ${gateways.join(',')} (workload selector ${selector}, port ${port}, hosts ${hosts.join(',')}).`,
  }),
};
