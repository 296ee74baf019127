import type { K8sObject } from './render.js';

interface Container {
  name: string;
  image?: string;
  resources?: { requests?: Record<string, unknown>; limits?: Record<string, unknown> };
  readinessProbe?: unknown;
  livenessProbe?: unknown;
  securityContext?: {
    runAsNonRoot?: boolean;
    runAsUser?: number;
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    privileged?: boolean;
    capabilities?: { add?: string[]; drop?: string[] };
  };
}

interface PodSpec {
  containers?: Container[];
  initContainers?: Container[];
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number };
}

const WORKLOADS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job']);

/** The pod spec of a workload object, if it is one. */
export function podSpecOf(o: K8sObject): PodSpec | undefined {
  if (o.kind === 'Pod') return o.spec as PodSpec;
  if (WORKLOADS.has(o.kind)) return (o.spec as { template?: { spec?: PodSpec } })?.template?.spec;
  if (o.kind === 'CronJob')
    return (o.spec as { jobTemplate?: { spec?: { template?: { spec?: PodSpec } } } })?.jobTemplate?.spec
      ?.template?.spec;
  return undefined;
}

function name(o: K8sObject): string {
  return `${o.kind} ${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`;
}

function resourceProblems(c: Container, at: string): string[] {
  const problems: string[] = [];
  if (!c.resources?.requests?.cpu || !c.resources.requests.memory)
    problems.push(`${at}: no cpu/memory requests`);
  if (!c.resources?.limits?.cpu || !c.resources.limits.memory) problems.push(`${at}: no cpu/memory limits`);
  return problems;
}

function nonRootProblems(c: Container, spec: PodSpec, at: string): string[] {
  const problems: string[] = [];
  const nonRoot = c.securityContext?.runAsNonRoot ?? spec.securityContext?.runAsNonRoot;
  const uid = c.securityContext?.runAsUser ?? spec.securityContext?.runAsUser;
  if (nonRoot !== true) problems.push(`${at}: runAsNonRoot is not set`);
  if (uid === undefined || uid === 0) problems.push(`${at}: no non-root runAsUser`);
  if (c.securityContext?.readOnlyRootFilesystem !== true) problems.push(`${at}: root filesystem is writable`);
  if (c.securityContext?.capabilities?.add?.length)
    problems.push(`${at}: adds capabilities ${c.securityContext.capabilities.add.join(', ')}`);
  return problems;
}

/**
 * Istio's istio-init, the one container allowed to run as root: it installs
 * the pod's iptables rules, which needs NET_ADMIN and NET_RAW and nothing
 * more — every other capability dropped, no privilege escalation, not
 * privileged.
 */
function iptablesInitProblems(c: Container, at: string): string[] {
  const sc = c.securityContext ?? {};
  const added = [...(sc.capabilities?.add ?? [])].sort();
  const problems: string[] = [];
  if (added.join(',') !== 'NET_ADMIN,NET_RAW')
    problems.push(
      `${at}: runs as root with capabilities [${added.join(', ')}]; only an iptables init container (exactly NET_ADMIN and NET_RAW) may run as root`,
    );
  if (!sc.capabilities?.drop?.includes('ALL'))
    problems.push(`${at}: runs as root without dropping ALL other capabilities`);
  if (sc.allowPrivilegeEscalation !== false)
    problems.push(`${at}: runs as root with privilege escalation allowed`);
  if (sc.privileged === true) problems.push(`${at}: runs privileged`);
  return problems;
}

/**
 * What every workload in deploy/ (and every pod the injector makes) must
 * have: resource requests and limits on every container, init containers
 * included; readiness and liveness probes on the long-running ones; a non-root
 * user (runAsNonRoot with a non-zero uid, on the pod or the container) with a
 * read-only root filesystem and no added capabilities — except Istio's
 * iptables init container, which runs as root with exactly NET_ADMIN and
 * NET_RAW.
 */
export function workloadProblems(o: K8sObject): string[] {
  const spec = podSpecOf(o);
  if (!spec) return [];
  const problems: string[] = [];
  for (const c of spec.containers ?? []) {
    const at = `${name(o)} container ${c.name}`;
    problems.push(...resourceProblems(c, at));
    if (!c.readinessProbe) problems.push(`${at}: no readinessProbe`);
    if (!c.livenessProbe) problems.push(`${at}: no livenessProbe`);
    problems.push(...nonRootProblems(c, spec, at));
  }
  for (const c of spec.initContainers ?? []) {
    const at = `${name(o)} init container ${c.name}`;
    problems.push(...resourceProblems(c, at));
    const root = c.securityContext?.runAsUser === 0 || c.securityContext?.runAsNonRoot === false;
    problems.push(...(root ? iptablesInitProblems(c, at) : nonRootProblems(c, spec, at)));
  }
  return problems;
}

/** Istio's rule: a Service port's name starts with its protocol (`http-web`, `grpc`, `tcp-db`), or is Istio's `status-port`. */
const PORT_NAME = /^(http|http2|https|grpc|grpc-web|tcp|tls|udp|mongo|mysql|redis)(-.*)?$|^status-port$/;

export function servicePortProblems(o: K8sObject): string[] {
  if (o.kind !== 'Service') return [];
  const ports = (o.spec as { ports?: { name?: string; port: number; appProtocol?: string }[] })?.ports ?? [];
  return ports
    .filter((p) => !p.appProtocol && !PORT_NAME.test(p.name ?? ''))
    .map((p) => `${name(o)} port ${p.port}: name "${p.name ?? ''}" does not say its protocol`);
}

/** Every admission webhook needs a CA bundle: inline, or injected by cert-manager's cainjector. */
export function webhookProblems(o: K8sObject): string[] {
  if (o.kind !== 'MutatingWebhookConfiguration' && o.kind !== 'ValidatingWebhookConfiguration') return [];
  const injected = Boolean(o.metadata.annotations?.['cert-manager.io/inject-ca-from']);
  const hooks = (o.webhooks as { name: string; clientConfig?: { caBundle?: string } }[] | undefined) ?? [];
  return hooks
    .filter((h) => !injected && !h.clientConfig?.caBundle)
    .map((h) => `${name(o)} webhook ${h.name}: no caBundle and no cert-manager.io/inject-ca-from annotation`);
}

/** The images an object's pods run. */
export function imagesOf(o: K8sObject): string[] {
  const spec = podSpecOf(o);
  if (!spec) return [];
  return [...(spec.containers ?? []), ...(spec.initContainers ?? [])]
    .map((c) => c.image ?? '')
    .filter(Boolean);
}
