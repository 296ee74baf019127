/**
 * @mizzen/inject — Istio's sidecar injection as pure functions: the policy
 * (which pods), the pod transformation (init container, sidecar, probes), the
 * AdmissionReview JSONPatch, and offline `kube-inject` over YAML.
 */

export {
  APP_HEALTH_PREFIX,
  APP_PROBERS_ENV,
  AppProber,
  AppProberError,
  type AppProberOptions,
  type ProbeResult,
} from './app-prober.js';
export {
  ANNOTATION,
  CANONICAL_NAME_LABEL,
  CANONICAL_REVISION_LABEL,
  type Container,
  INIT_CONTAINER,
  INJECTION_LABEL,
  type InjectionConfig,
  type InjectionDecision,
  type InjectionResult,
  type InjectOptions,
  injectPod,
  iptablesArgs,
  isInjected,
  type Json,
  type JsonObject,
  PORTS,
  type PodLike,
  PROMETHEUS_ANNOTATIONS_ENV,
  PROXY_CONTAINER,
  PROXY_UID,
  type Probe,
  REVISION_LABEL,
  rewriteProbes,
  shouldInject,
  TLS_MODE_LABEL,
  workloadName,
} from './inject.js';
export { KubeInjectError, kubeInject } from './kube-inject.js';
export { applyPatch, injectionPatch, type PatchOperation } from './patch.js';
