import type { AnalysisContext } from '../context.js';
import { type AnalysisMessage, msg, originOf } from '../messages.js';

/**
 * Istio's annotations (istio/api annotation/annotations.yaml) that may
 * appear on the config resources Mizzen reads. An annotation in an istio.io
 * domain not among them is most likely misspelt and has no effect.
 */
const KNOWN = new Set([
  'istio.io/dry-run',
  'istio.io/rev',
  'istio.io/connect-strategy',
  'istio.io/use-waypoint',
  'kubernetes.io/ingress.class',
  'networking.istio.io/exportTo',
  'networking.istio.io/gatewayPort',
  'networking.istio.io/traffic-distribution',
  'networking.istio.io/address-type',
  'networking.istio.io/service-type',
  'proxy.istio.io/config',
  'proxy.istio.io/overrides',
  'security.istio.io/tlsMode',
  'sidecar.istio.io/inject',
  'sidecar.istio.io/status',
  'sidecar.istio.io/proxyImage',
  'sidecar.istio.io/interceptionMode',
  'sidecar.istio.io/logLevel',
  'sidecar.istio.io/componentLogLevel',
  'sidecar.istio.io/agentLogLevel',
  'sidecar.istio.io/bootstrapOverride',
  'sidecar.istio.io/extraStatTags',
  'sidecar.istio.io/statsInclusionPrefixes',
  'sidecar.istio.io/statsInclusionSuffixes',
  'sidecar.istio.io/statsInclusionRegexps',
  'sidecar.istio.io/rewriteAppHTTPProbers',
  'sidecar.istio.io/userVolume',
  'sidecar.istio.io/userVolumeMount',
  'sidecar.istio.io/enableCoreDump',
  'sidecar.istio.io/proxyCPU',
  'sidecar.istio.io/proxyCPULimit',
  'sidecar.istio.io/proxyMemory',
  'sidecar.istio.io/proxyMemoryLimit',
  'status.sidecar.istio.io/port',
  'readiness.status.sidecar.istio.io/applicationPorts',
  'readiness.status.sidecar.istio.io/initialDelaySeconds',
  'readiness.status.sidecar.istio.io/periodSeconds',
  'readiness.status.sidecar.istio.io/failureThreshold',
  'traffic.sidecar.istio.io/includeOutboundIPRanges',
  'traffic.sidecar.istio.io/excludeOutboundIPRanges',
  'traffic.sidecar.istio.io/includeInboundPorts',
  'traffic.sidecar.istio.io/excludeInboundPorts',
  'traffic.sidecar.istio.io/includeOutboundPorts',
  'traffic.sidecar.istio.io/excludeOutboundPorts',
  'traffic.sidecar.istio.io/excludeInterfaces',
  'traffic.sidecar.istio.io/kubevirtInterfaces',
  'prometheus.istio.io/merge-metrics',
  'inject.istio.io/templates',
  'topology.istio.io/controlPlaneClusters',
  'ambient.istio.io/redirection',
  'ambient.istio.io/bypass-inbound-capture',
  'gateway.istio.io/controller-version',
  'gateway.istio.io/service-account',
]);

/** `sidecar.istio.io/inject` → true: its prefix is istio.io or a subdomain of it. */
function isIstioAnnotation(key: string): boolean {
  const slash = key.indexOf('/');
  if (slash < 0) return false;
  const domain = key.slice(0, slash);
  return domain === 'istio.io' || domain.endsWith('.istio.io');
}

/** IST0108 UnknownAnnotation: an annotation in an istio.io domain that Istio does not define. */
export function analyzeAnnotations(ctx: AnalysisContext): AnalysisMessage[] {
  return ctx.input.resources.flatMap((r) =>
    Object.keys(r.metadata.annotations ?? {})
      .filter((key) => isIstioAnnotation(key) && !KNOWN.has(key))
      .map((key) => msg.unknownAnnotation(originOf(r), key)),
  );
}
