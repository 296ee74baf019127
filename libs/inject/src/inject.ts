/**
 * Istio's sidecar injection as a pure function over pod specs: which pods are
 * injected, and what they get — the `mizzen-init` init container (iptables,
 * with Istio's `istio-iptables` flags), the `istio-proxy` container (ports,
 * downward-API env, resources from annotations, uid 1337, readiness on 15021,
 * the projected `istio-ca` token, the root-cert ConfigMap) and kubelet probes
 * rewritten to go through the agent on 15020.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/** The pod fields injection reads and writes; everything else passes through untouched. */
export interface PodLike {
  metadata?: {
    name?: string;
    generateName?: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: { kind?: string; name?: string; apiVersion?: string; controller?: boolean }[];
    [key: string]: unknown;
  };
  spec?: {
    containers?: Container[];
    initContainers?: Container[];
    volumes?: JsonObject[];
    hostNetwork?: boolean;
    serviceAccountName?: string;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

export interface Probe {
  httpGet?: { path?: string; port: number | string; host?: string; scheme?: string; httpHeaders?: Json[] };
  tcpSocket?: { port: number | string; host?: string };
  grpc?: { port: number; service?: string };
  timeoutSeconds?: number;
  [key: string]: unknown;
}

export interface Container {
  name: string;
  image?: string;
  ports?: { containerPort: number; name?: string; protocol?: string }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  env?: JsonObject[];
  [key: string]: unknown;
}

export interface InjectionConfig {
  /** The sidecar-agent image (also runs the iptables init step). */
  proxyImage: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** Pilot's xDS address as sidecars dial it. */
  discoveryAddress?: string;
  /** Citadel's CA address. */
  caAddress?: string;
  trustDomain?: string;
  clusterDomain?: string;
  meshId?: string;
  clusterId?: string;
  revision?: string;
  /** Proxy resources when the pod's annotations set none (Istio's defaults). */
  resources?: {
    requests?: { cpu?: string; memory?: string };
    limits?: { cpu?: string; memory?: string };
  };
}

export const ANNOTATION = {
  inject: 'sidecar.istio.io/inject',
  status: 'sidecar.istio.io/status',
  proxyCPU: 'sidecar.istio.io/proxyCPU',
  proxyMemory: 'sidecar.istio.io/proxyMemory',
  proxyCPULimit: 'sidecar.istio.io/proxyCPULimit',
  proxyMemoryLimit: 'sidecar.istio.io/proxyMemoryLimit',
  proxyImage: 'sidecar.istio.io/proxyImage',
  rewriteAppHTTPProbers: 'sidecar.istio.io/rewriteAppHTTPProbers',
  interceptionMode: 'sidecar.istio.io/interceptionMode',
  includeOutboundIPRanges: 'traffic.sidecar.istio.io/includeOutboundIPRanges',
  excludeOutboundIPRanges: 'traffic.sidecar.istio.io/excludeOutboundIPRanges',
  includeInboundPorts: 'traffic.sidecar.istio.io/includeInboundPorts',
  excludeInboundPorts: 'traffic.sidecar.istio.io/excludeInboundPorts',
  excludeOutboundPorts: 'traffic.sidecar.istio.io/excludeOutboundPorts',
  includeOutboundPorts: 'traffic.sidecar.istio.io/includeOutboundPorts',
  defaultContainer: 'kubectl.kubernetes.io/default-container',
  defaultLogsContainer: 'kubectl.kubernetes.io/default-logs-container',
  /** `"false"` turns Istio's metrics merging off for the pod: its prometheus.io/* annotations stay as they are. */
  mergeMetrics: 'prometheus.istio.io/merge-metrics',
} as const;

/** Where the agent finds the app's own metrics when merging (Istio's env, JSON `{scrape, path, port}`). */
export const PROMETHEUS_ANNOTATIONS_ENV = 'ISTIO_PROMETHEUS_ANNOTATIONS';
const PROMETHEUS = { scrape: 'prometheus.io/scrape', path: 'prometheus.io/path', port: 'prometheus.io/port' };

export const INJECTION_LABEL = 'istio-injection';
export const REVISION_LABEL = 'istio.io/rev';
export const TLS_MODE_LABEL = 'security.istio.io/tlsMode';
export const CANONICAL_NAME_LABEL = 'service.istio.io/canonical-name';
export const CANONICAL_REVISION_LABEL = 'service.istio.io/canonical-revision';

export const PROXY_CONTAINER = 'istio-proxy';
export const INIT_CONTAINER = 'mizzen-init';
export const PROXY_UID = 1337;
export const PORTS = {
  outbound: 15001,
  inbound: 15006,
  admin: 15000,
  agent: 15020,
  health: 15021,
  prometheus: 15090,
} as const;

const VOLUMES = [
  'workload-socket',
  'credential-socket',
  'workload-certs',
  'istio-envoy',
  'istio-data',
  'istio-podinfo',
  'istio-token',
  'istiod-ca-cert',
];

export interface InjectionDecision {
  inject: boolean;
  reason: string;
}

function truthy(value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  const v = value.toLowerCase();
  if (v === 'true' || v === 'y' || v === 'yes' || v === 'on' || v === 'enabled') return true;
  if (v === 'false' || v === 'n' || v === 'no' || v === 'off' || v === 'disabled') return false;
  return undefined;
}

/** True when the pod already carries a sidecar (injected before, or by hand). */
export function isInjected(pod: PodLike): boolean {
  if (pod.metadata?.annotations?.[ANNOTATION.status]) return true;
  return (pod.spec?.containers ?? []).some((c) => c.name === PROXY_CONTAINER);
}

/**
 * Istio's policy: a pod opts out with `sidecar.istio.io/inject: "false"`
 * (label or annotation); host-network pods and injected pods are left alone;
 * otherwise the namespace decides — `istio-injection=enabled` injects,
 * `istio-injection=disabled` does not, an `istio.io/rev` label (on the pod or
 * the namespace) injects when it names this injector's revision — and a pod
 * labelled `sidecar.istio.io/inject: "true"` is injected in any namespace.
 * Unknown namespace labels (offline `kube-inject`, or the API server already
 * filtered by the webhook's namespaceSelector) inject.
 */
export function shouldInject(
  pod: PodLike,
  namespaceLabels?: Record<string, string>,
  revision = 'default',
): InjectionDecision {
  const podFlag =
    truthy(pod.metadata?.labels?.[ANNOTATION.inject]) ??
    truthy(pod.metadata?.annotations?.[ANNOTATION.inject]);
  if (podFlag === false) return { inject: false, reason: `pod sets ${ANNOTATION.inject}: "false"` };
  if (pod.spec?.hostNetwork) return { inject: false, reason: 'pod uses the host network' };
  if (isInjected(pod)) return { inject: false, reason: 'pod already has a sidecar' };
  if (podFlag === true) return { inject: true, reason: `pod sets ${ANNOTATION.inject}: "true"` };
  if (!namespaceLabels) return { inject: true, reason: 'namespace selected by the webhook' };
  const ns = namespaceLabels[INJECTION_LABEL];
  if (ns === 'disabled') return { inject: false, reason: `namespace has ${INJECTION_LABEL}=disabled` };
  if (ns === 'enabled') return { inject: true, reason: `namespace has ${INJECTION_LABEL}=enabled` };
  const rev = pod.metadata?.labels?.[REVISION_LABEL] ?? namespaceLabels[REVISION_LABEL];
  if (rev !== undefined) {
    return rev === revision
      ? { inject: true, reason: `${REVISION_LABEL}=${rev} is this injector's revision` }
      : { inject: false, reason: `${REVISION_LABEL}=${rev} belongs to another revision's injector` };
  }
  return { inject: false, reason: 'namespace is not labelled for injection' };
}

/** The workload a pod belongs to: its controller's name, with a ReplicaSet's pod-template hash removed. */
export function workloadName(pod: PodLike): string {
  const owner =
    pod.metadata?.ownerReferences?.find((o) => o.controller) ?? pod.metadata?.ownerReferences?.[0];
  if (owner?.name) {
    if (owner.kind === 'ReplicaSet') {
      const hash = pod.metadata?.labels?.['pod-template-hash'];
      if (hash && owner.name.endsWith(`-${hash}`)) return owner.name.slice(0, -hash.length - 1);
      const dash = owner.name.lastIndexOf('-');
      return dash > 0 ? owner.name.slice(0, dash) : owner.name;
    }
    if (owner.kind === 'Job') {
      const dash = owner.name.lastIndexOf('-');
      return dash > 0 && /^\d+$/.test(owner.name.slice(dash + 1)) ? owner.name.slice(0, dash) : owner.name;
    }
    return owner.name;
  }
  if (pod.metadata?.name) return pod.metadata.name;
  return (pod.metadata?.generateName ?? 'unknown').replace(/-$/, '');
}

function fieldEnv(name: string, fieldPath: string): JsonObject {
  return { name, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath } } };
}

function probePort(port: number | string, container: Container): number | undefined {
  if (typeof port === 'number') return port;
  if (/^\d+$/.test(port)) return Number(port);
  return container.ports?.find((p) => p.name === port)?.containerPort;
}

const PROBES = [
  ['readinessProbe', 'readyz'],
  ['livenessProbe', 'livez'],
  ['startupProbe', 'startupz'],
] as const;

/**
 * Rewrites kubelet's HTTP and TCP probes of app containers to the agent's
 * `/app-health/<container>/<readyz|livez|startupz>` on 15020, as Istio does
 * (with iptables capture, kubelet's probes would otherwise hit the inbound
 * listener, and mTLS would refuse them). Returns the original probes by the
 * new paths: the value of `ISTIO_KUBE_APP_PROBERS`.
 */
export function rewriteProbes(containers: Container[]): Record<string, JsonObject> {
  const probers: Record<string, JsonObject> = {};
  for (const c of containers) {
    for (const [field, suffix] of PROBES) {
      const probe = c[field];
      if (!probe) continue;
      const path = `/app-health/${c.name}/${suffix}`;
      const timeout = probe.timeoutSeconds ?? 1;
      if (probe.httpGet) {
        const port = probePort(probe.httpGet.port, c);
        if (port === undefined) continue;
        const original: JsonObject = { path: probe.httpGet.path ?? '/', port };
        if (probe.httpGet.host) original.host = probe.httpGet.host;
        if (probe.httpGet.scheme) original.scheme = probe.httpGet.scheme;
        if (probe.httpGet.httpHeaders) original.httpHeaders = probe.httpGet.httpHeaders;
        probers[path] = { httpGet: original, timeoutSeconds: timeout };
      } else if (probe.tcpSocket) {
        const port = probePort(probe.tcpSocket.port, c);
        if (port === undefined) continue;
        probers[path] = {
          tcpSocket: { port, ...(probe.tcpSocket.host ? { host: probe.tcpSocket.host } : {}) },
          timeoutSeconds: timeout,
        };
      } else continue; // gRPC and exec probes reach the app as they are (kubelet's gRPC probe is plaintext h2)
      const { httpGet: _h, tcpSocket: _t, grpc: _g, ...rest } = probe;
      c[field] = { ...rest, httpGet: { path, port: PORTS.agent, scheme: 'HTTP' } };
    }
  }
  return probers;
}

/** Istio's `istio-iptables` arguments for this pod, with its traffic annotations applied. */
export function iptablesArgs(annotations: Record<string, string>): string[] {
  const excludeInbound = [String(PORTS.prometheus), String(PORTS.health), String(PORTS.agent)];
  const extra = annotations[ANNOTATION.excludeInboundPorts];
  if (extra)
    for (const p of extra
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean))
      excludeInbound.push(p);
  const args = [
    'iptables',
    '-p',
    String(PORTS.outbound),
    '-z',
    String(PORTS.inbound),
    '-u',
    String(PROXY_UID),
    '-m',
    annotations[ANNOTATION.interceptionMode] ?? 'REDIRECT',
    '-i',
    annotations[ANNOTATION.includeOutboundIPRanges] ?? '*',
    '-x',
    annotations[ANNOTATION.excludeOutboundIPRanges] ?? '',
    '-b',
    annotations[ANNOTATION.includeInboundPorts] ?? '*',
    '-d',
    [...new Set(excludeInbound)].join(','),
  ];
  const excludeOutbound = annotations[ANNOTATION.excludeOutboundPorts];
  if (excludeOutbound) args.push('-o', excludeOutbound);
  const includeOutbound = annotations[ANNOTATION.includeOutboundPorts];
  if (includeOutbound) args.push('-q', includeOutbound);
  return args;
}

function proxyResources(annotations: Record<string, string>, config: InjectionConfig): JsonObject {
  const requests: JsonObject = {};
  const limits: JsonObject = {};
  const cpu = annotations[ANNOTATION.proxyCPU] ?? config.resources?.requests?.cpu ?? '100m';
  const memory = annotations[ANNOTATION.proxyMemory] ?? config.resources?.requests?.memory ?? '128Mi';
  const cpuLimit = annotations[ANNOTATION.proxyCPULimit] ?? config.resources?.limits?.cpu ?? '2000m';
  const memoryLimit =
    annotations[ANNOTATION.proxyMemoryLimit] ?? config.resources?.limits?.memory ?? '1024Mi';
  requests.cpu = cpu;
  requests.memory = memory;
  limits.cpu = cpuLimit;
  limits.memory = memoryLimit;
  return { requests, limits };
}

export interface InjectOptions {
  /** The namespace's labels, when known (the webhook in Kubernetes mode). */
  namespaceLabels?: Record<string, string>;
  /** The namespace the pod will run in (the AdmissionReview's, or `default` offline). */
  namespace?: string;
  /** Overrides the workload name derived from the pod (kube-inject knows the Deployment's). */
  workloadName?: string;
  /** The controller that owns the pod, for ISTIO_META_OWNER (`kubernetes://apis/apps/v1/namespaces/ns/deployments/name`). */
  owner?: string;
}

export interface InjectionResult {
  pod: PodLike;
  injected: boolean;
  reason: string;
}

/** Injects a pod (a copy; the input is not changed), or says why not. */
export function injectPod(
  input: PodLike,
  config: InjectionConfig,
  options: InjectOptions = {},
): InjectionResult {
  const decision = shouldInject(input, options.namespaceLabels, config.revision ?? 'default');
  if (!decision.inject) return { pod: input, injected: false, reason: decision.reason };
  const pod = structuredClone(input);
  pod.metadata ??= {};
  pod.spec ??= {};
  const annotations = { ...(pod.metadata.annotations ?? {}) };
  const labels = { ...(pod.metadata.labels ?? {}) };
  const namespace = options.namespace ?? pod.metadata.namespace ?? 'default';
  const workload = options.workloadName ?? workloadName(pod);
  const clusterDomain = config.clusterDomain ?? 'cluster.local';
  const trustDomain = config.trustDomain ?? clusterDomain;
  const revision = config.revision ?? 'default';
  const appContainers = pod.spec.containers ?? [];
  const firstApp = appContainers[0]?.name;

  const rewrite = truthy(annotations[ANNOTATION.rewriteAppHTTPProbers]) !== false;
  const probers = rewrite ? rewriteProbes(appContainers) : {};

  const podPorts = appContainers.flatMap((c) =>
    (c.ports ?? []).map((p) => ({
      ...(p.name ? { name: p.name } : {}),
      containerPort: p.containerPort,
      protocol: p.protocol ?? 'TCP',
    })),
  );
  const owner =
    options.owner ??
    (() => {
      const ref = pod.metadata?.ownerReferences?.find((o) => o.controller);
      if (ref?.kind === 'ReplicaSet')
        return `kubernetes://apis/apps/v1/namespaces/${namespace}/deployments/${workload}`;
      if (ref?.kind && ref.name)
        return `kubernetes://apis/${ref.apiVersion ?? 'v1'}/namespaces/${namespace}/${ref.kind.toLowerCase()}s/${ref.name}`;
      return `kubernetes://apis/v1/namespaces/${namespace}/pods/${pod.metadata?.name ?? workload}`;
    })();

  const env: JsonObject[] = [
    { name: 'PILOT_CERT_PROVIDER', value: 'istiod' },
    { name: 'CA_ADDR', value: config.caAddress ?? 'istio-citadel.istio-system.svc:8060' },
    { name: 'DISCOVERY_ADDRESS', value: config.discoveryAddress ?? 'istiod.istio-system.svc:15010' },
    fieldEnv('POD_NAME', 'metadata.name'),
    fieldEnv('POD_NAMESPACE', 'metadata.namespace'),
    fieldEnv('INSTANCE_IP', 'status.podIP'),
    fieldEnv('SERVICE_ACCOUNT', 'spec.serviceAccountName'),
    fieldEnv('HOST_IP', 'status.hostIP'),
    { name: 'ISTIO_CPU_LIMIT', valueFrom: { resourceFieldRef: { resource: 'limits.cpu', divisor: '0' } } },
    { name: 'PROXY_CONFIG', value: '{}' },
    { name: 'ISTIO_META_POD_PORTS', value: JSON.stringify(podPorts) },
    { name: 'ISTIO_META_APP_CONTAINERS', value: appContainers.map((c) => c.name).join(',') },
    { name: 'ISTIO_META_CLUSTER_ID', value: config.clusterId ?? 'Kubernetes' },
    fieldEnv('ISTIO_META_NODE_NAME', 'spec.nodeName'),
    { name: 'ISTIO_META_INTERCEPTION_MODE', value: annotations[ANNOTATION.interceptionMode] ?? 'REDIRECT' },
    { name: 'ISTIO_META_WORKLOAD_NAME', value: workload },
    { name: 'ISTIO_META_OWNER', value: owner },
    { name: 'ISTIO_META_MESH_ID', value: config.meshId ?? trustDomain },
    { name: 'TRUST_DOMAIN', value: trustDomain },
  ];
  if (Object.keys(probers).length > 0)
    env.push({ name: 'ISTIO_KUBE_APP_PROBERS', value: JSON.stringify(probers) });
  // Istio's metrics merging: the agent's 15020 serves Istio's metrics followed by the app's own, so the
  // prometheus.io/* annotations that pointed Prometheus at the app are handed to the agent instead.
  const mergeMetrics = annotations[ANNOTATION.mergeMetrics] !== 'false';
  if (mergeMetrics) {
    const scrape = {
      scrape: annotations[PROMETHEUS.scrape] ?? '',
      path: annotations[PROMETHEUS.path] ?? '',
      port: annotations[PROMETHEUS.port] ?? '',
    };
    if (scrape.scrape || scrape.path || scrape.port)
      env.push({ name: PROMETHEUS_ANNOTATIONS_ENV, value: JSON.stringify(scrape) });
  }

  const image = annotations[ANNOTATION.proxyImage] ?? config.proxyImage;
  const pullPolicy = config.imagePullPolicy ?? 'IfNotPresent';
  const resources = proxyResources(annotations, config);

  const init: Container = {
    name: INIT_CONTAINER,
    image,
    imagePullPolicy: pullPolicy,
    args: iptablesArgs(annotations),
    resources,
    securityContext: {
      allowPrivilegeEscalation: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
      privileged: false,
      readOnlyRootFilesystem: true,
      runAsGroup: 0,
      runAsNonRoot: false,
      runAsUser: 0,
    },
  };

  const sidecar: Container = {
    name: PROXY_CONTAINER,
    image,
    imagePullPolicy: pullPolicy,
    args: [
      '--pilot',
      config.discoveryAddress ?? 'istiod.istio-system.svc:15010',
      '--workload',
      '$(POD_NAME)',
      '--namespace',
      '$(POD_NAMESPACE)',
      '--service-account',
      '$(SERVICE_ACCOUNT)',
      '--ip',
      '$(INSTANCE_IP)',
      ...(Object.keys(input.metadata?.labels ?? {}).length > 0
        ? [
            '--labels',
            Object.entries(input.metadata?.labels ?? {})
              .map(([k, v]) => `${k}=${v}`)
              .join(','),
          ]
        : []),
      '--capture-mode',
      'iptables',
      '--outbound-port',
      String(PORTS.outbound),
      '--admin-port',
      String(PORTS.admin),
      '--health-port',
      String(PORTS.health),
      '--ca-address',
      config.caAddress ?? 'istio-citadel.istio-system.svc:8060',
      '--ca-token-file',
      '/var/run/secrets/tokens/istio-token',
      // The CA's certificate is checked against the mesh root (the istio-ca-root-cert ConfigMap, mounted below).
      '--ca-root-cert',
      '/var/run/secrets/istio/root-cert.pem',
      '--trust-domain',
      trustDomain,
    ],
    env: env as Json[] as JsonObject[],
    ports: [
      { containerPort: PORTS.outbound, name: 'outbound', protocol: 'TCP' },
      { containerPort: PORTS.inbound, name: 'inbound', protocol: 'TCP' },
      { containerPort: PORTS.admin, name: 'http-admin', protocol: 'TCP' },
      { containerPort: PORTS.agent, name: 'http-agent', protocol: 'TCP' },
      { containerPort: PORTS.health, name: 'health', protocol: 'TCP' },
      { containerPort: PORTS.prometheus, name: 'http-envoy-prom', protocol: 'TCP' },
    ],
    readinessProbe: {
      httpGet: { path: '/healthz/ready', port: PORTS.health, scheme: 'HTTP' },
      failureThreshold: 4,
      periodSeconds: 15,
      timeoutSeconds: 3,
    },
    startupProbe: {
      httpGet: { path: '/healthz/ready', port: PORTS.health, scheme: 'HTTP' },
      failureThreshold: 600,
      periodSeconds: 1,
      timeoutSeconds: 3,
    },
    resources,
    securityContext: {
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      privileged: false,
      readOnlyRootFilesystem: true,
      runAsGroup: PROXY_UID,
      runAsNonRoot: true,
      runAsUser: PROXY_UID,
    },
    volumeMounts: [
      { name: 'workload-socket', mountPath: '/var/run/secrets/workload-spiffe-uds' },
      { name: 'credential-socket', mountPath: '/var/run/secrets/credential-uds' },
      { name: 'workload-certs', mountPath: '/var/run/secrets/workload-spiffe-credentials' },
      { name: 'istiod-ca-cert', mountPath: '/var/run/secrets/istio' },
      { name: 'istio-data', mountPath: '/var/lib/istio/data' },
      { name: 'istio-envoy', mountPath: '/etc/istio/proxy' },
      { name: 'istio-token', mountPath: '/var/run/secrets/tokens' },
      { name: 'istio-podinfo', mountPath: '/etc/istio/pod' },
    ],
  };

  const volumes: JsonObject[] = [
    { name: 'workload-socket', emptyDir: {} },
    { name: 'credential-socket', emptyDir: {} },
    { name: 'workload-certs', emptyDir: {} },
    { name: 'istio-envoy', emptyDir: { medium: 'Memory' } },
    { name: 'istio-data', emptyDir: {} },
    {
      name: 'istio-podinfo',
      downwardAPI: {
        items: [
          { path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } },
          { path: 'annotations', fieldRef: { fieldPath: 'metadata.annotations' } },
        ],
      },
    },
    {
      name: 'istio-token',
      projected: {
        sources: [
          { serviceAccountToken: { audience: 'istio-ca', expirationSeconds: 43200, path: 'istio-token' } },
        ],
      },
    },
    { name: 'istiod-ca-cert', configMap: { name: 'istio-ca-root-cert' } },
  ];

  pod.spec.initContainers = [...(pod.spec.initContainers ?? []), init];
  pod.spec.containers = [...appContainers, sidecar];
  pod.spec.volumes = [...(pod.spec.volumes ?? []), ...volumes];

  labels[TLS_MODE_LABEL] = 'istio';
  labels[CANONICAL_NAME_LABEL] ??= labels['app.kubernetes.io/name'] ?? labels.app ?? workload;
  labels[CANONICAL_REVISION_LABEL] ??= labels.version ?? labels['app.kubernetes.io/version'] ?? 'latest';
  if (firstApp) {
    annotations[ANNOTATION.defaultContainer] ??= firstApp;
    annotations[ANNOTATION.defaultLogsContainer] ??= firstApp;
  }
  annotations['istio.io/rev'] ??= revision;
  if (mergeMetrics) {
    annotations[PROMETHEUS.path] = '/stats/prometheus';
    annotations[PROMETHEUS.port] = String(PORTS.agent);
    annotations[PROMETHEUS.scrape] = 'true';
  }
  annotations[ANNOTATION.status] = JSON.stringify({
    initContainers: [INIT_CONTAINER],
    containers: [PROXY_CONTAINER],
    volumes: VOLUMES,
    imagePullSecrets: null,
    revision,
  });
  pod.metadata.labels = labels;
  pod.metadata.annotations = annotations;
  return { pod, injected: true, reason: decision.reason };
}
