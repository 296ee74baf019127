import os from 'node:os';
import {
  CoreV1Api,
  DiscoveryV1Api,
  type KubeConfig,
  type KubernetesObject,
  type V1ConfigMap,
  type V1EndpointSlice,
  type V1Namespace,
  type V1Node,
  type V1Pod,
  type V1Secret,
  type V1Service,
} from '@kubernetes/client-node';
import type { Logger } from '@mizzen/runtime';
import type { MeshConfig } from '../networking/mesh-config.js';
import { parseMeshNetworks } from '../networking/mesh-networks.js';
import type { Registry } from '../registry/model.js';
import { KubeConfigSource } from './config-source.js';
import { CredentialStore } from './credentials.js';
import { Informer, type InformerOptions, statusOf, waitForSync } from './informer.js';
import { LeaderElection } from './leader.js';
import { parseMeshConfig } from './mesh-config.js';
import { MissingPermissions } from './permissions.js';
import { buildKubeRegistry, type WorkloadServicePort, workloadServicePorts } from './registry.js';
import type { RootCertSource } from './root-cert.js';
import { StatusWriter } from './status.js';

/** The ConfigMap every namespace gets with the mesh root certificate (Istio's name and key). */
export const ROOT_CERT_CONFIGMAP = 'istio-ca-root-cert';
export const ROOT_CERT_KEY = 'root-cert.pem';
/** The mesh config ConfigMap in the root namespace, and its key. */
export const MESH_CONFIGMAP = 'istio';
export const MESH_KEY = 'mesh';
/** The key of the same ConfigMap holding Istio's MeshNetworks. */
export const MESH_NETWORKS_KEY = 'meshNetworks';

export interface KubeControllerOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  /** Istio's system namespace: the Lease, the `istio` ConfigMap. */
  systemNamespace?: string;
  domainSuffix?: string;
  /** Mesh config before the `istio` ConfigMap is read (flags). */
  meshDefaults: MeshConfig;
  /** This replica's name in the Lease (default: hostname, i.e. the pod name, plus the pid). */
  identity?: string;
  leaseName?: string;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** How often informers re-deliver their caches (status writes that failed are retried then); 60s. */
  resyncMs?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** How long start() waits for the caches before serving with what it has (30s). */
  syncTimeoutMs?: number;
  /** The root certificate to keep in every namespace's `istio-ca-root-cert`; none → not managed. */
  rootCert?: RootCertSource;
  /** The Kubernetes registry changed (services, endpoints, pods, nodes, namespaces). */
  onRegistryChange?: () => void;
  onMeshChange?: (mesh: MeshConfig) => void;
}

/**
 * Pilot's Kubernetes mode: the Istio CRDs as a config source, the service
 * registry from Services, EndpointSlices, Pods, Nodes and Namespaces, gateway
 * credentials from Secrets, mesh config from the `istio` ConfigMap, and — only
 * while this replica holds the Lease — the writes: CRD status and the
 * `istio-ca-root-cert` ConfigMap in every namespace. Every replica serves xDS.
 */
export class KubeController {
  readonly configSource: KubeConfigSource;
  readonly credentials: CredentialStore;
  readonly leader: LeaderElection;
  readonly statusWriter: StatusWriter;
  private readonly core: CoreV1Api;
  private readonly services: Informer<V1Service>;
  private readonly slices: Informer<V1EndpointSlice>;
  private readonly pods: Informer<V1Pod>;
  private readonly nodes: Informer<V1Node>;
  private readonly namespaces: Informer<V1Namespace>;
  private readonly secrets: Informer<V1Secret>;
  private readonly meshMap: Informer<V1ConfigMap>;
  private readonly rootCertMaps: Informer<V1ConfigMap>;
  private readonly systemNamespace: string;
  private readonly domainSuffix: string;
  private registryCache?: Registry;
  private registryNotify = false;
  private mesh: MeshConfig;
  /** The ConfigMap's `mesh` and `meshNetworks` last read (none at first: the defaults are in force). */
  private meshText = JSON.stringify([undefined, undefined]);
  private unsubscribeRoot?: () => void;
  private readonly rootWrites = new Set<string>();
  private rootWriteCount = 0;
  private readonly permissions: MissingPermissions;

  constructor(private readonly options: KubeControllerOptions) {
    const kc = options.kubeConfig;
    const log = options.logger;
    this.systemNamespace = options.systemNamespace ?? 'istio-system';
    this.domainSuffix = options.domainSuffix ?? options.meshDefaults.domainSuffix;
    this.mesh = { ...options.meshDefaults };
    this.permissions = new MissingPermissions(log);
    this.core = kc.makeApiClient(CoreV1Api);
    const discovery = kc.makeApiClient(DiscoveryV1Api);
    const common = {
      kubeConfig: kc,
      logger: log,
      resyncMs: options.resyncMs ?? 60_000,
      initialBackoffMs: options.initialBackoffMs,
      maxBackoffMs: options.maxBackoffMs,
    };
    const informer = <T extends KubernetesObject>(o: Omit<InformerOptions<T>, keyof typeof common>) =>
      new Informer<T>({ ...common, ...o });
    this.services = informer<V1Service>({
      resource: 'services',
      path: '/api/v1/services',
      list: () => this.core.listServiceForAllNamespaces(),
    });
    this.slices = informer<V1EndpointSlice>({
      resource: 'endpointslices.discovery.k8s.io',
      path: '/apis/discovery.k8s.io/v1/endpointslices',
      list: () => discovery.listEndpointSliceForAllNamespaces(),
    });
    this.pods = informer<V1Pod>({
      resource: 'pods',
      path: '/api/v1/pods',
      list: () => this.core.listPodForAllNamespaces(),
    });
    this.nodes = informer<V1Node>({
      resource: 'nodes',
      path: '/api/v1/nodes',
      list: () => this.core.listNode(),
    });
    this.namespaces = informer<V1Namespace>({
      resource: 'namespaces',
      path: '/api/v1/namespaces',
      list: () => this.core.listNamespace(),
    });
    this.secrets = informer<V1Secret>({
      resource: 'secrets',
      path: '/api/v1/secrets',
      fieldSelector: 'type!=kubernetes.io/service-account-token',
      list: () =>
        this.core.listSecretForAllNamespaces({ fieldSelector: 'type!=kubernetes.io/service-account-token' }),
    });
    this.meshMap = informer<V1ConfigMap>({
      resource: `configmaps (${this.systemNamespace}/${MESH_CONFIGMAP})`,
      path: `/api/v1/namespaces/${this.systemNamespace}/configmaps`,
      fieldSelector: `metadata.name=${MESH_CONFIGMAP}`,
      list: () =>
        this.core.listNamespacedConfigMap({
          namespace: this.systemNamespace,
          fieldSelector: `metadata.name=${MESH_CONFIGMAP}`,
        }),
    });
    this.rootCertMaps = informer<V1ConfigMap>({
      resource: `configmaps (${ROOT_CERT_CONFIGMAP})`,
      path: '/api/v1/configmaps',
      fieldSelector: `metadata.name=${ROOT_CERT_CONFIGMAP}`,
      list: () =>
        this.core.listConfigMapForAllNamespaces({ fieldSelector: `metadata.name=${ROOT_CERT_CONFIGMAP}` }),
    });

    this.statusWriter = new StatusWriter(kc, log, this.permissions);
    this.configSource = new KubeConfigSource({
      ...common,
      statusWriter: this.statusWriter,
      syncTimeoutMs: options.syncTimeoutMs,
    });
    this.credentials = new CredentialStore(this.secrets);
    this.leader = new LeaderElection({
      kubeConfig: kc,
      logger: log,
      namespace: this.systemNamespace,
      name: options.leaseName ?? 'istio-leader',
      identity: options.identity ?? `${os.hostname()}_${process.pid}`,
      leaseDurationMs: options.leaseDurationMs,
      renewDeadlineMs: options.renewDeadlineMs,
      retryPeriodMs: options.retryPeriodMs,
      permissions: this.permissions,
      onStartedLeading: () => {
        this.statusWriter.setEnabled(true);
        this.configSource.reconcileStatus();
        this.reconcileRootCerts();
      },
      onStoppedLeading: () => this.statusWriter.setEnabled(false),
    });

    for (const i of [this.services, this.slices, this.pods, this.nodes] as Informer<KubernetesObject>[]) {
      i.on((event) => {
        if (event !== 'resync') this.registryChanged();
      });
    }
    this.namespaces.on((event, ns) => {
      if (event !== 'resync') this.registryChanged();
      if (event !== 'delete' && ns.metadata?.name) this.ensureRootCert(ns.metadata.name);
    });
    this.rootCertMaps.on((_event, cm) => {
      if (cm.metadata?.namespace) this.ensureRootCert(cm.metadata.namespace);
    });
    this.meshMap.on((event, cm) => this.meshChanged(event === 'delete' ? undefined : cm));
  }

  private informers(): Informer<KubernetesObject>[] {
    return [
      this.services,
      this.slices,
      this.pods,
      this.nodes,
      this.namespaces,
      this.secrets,
      this.meshMap,
      this.rootCertMaps,
    ] as Informer<KubernetesObject>[];
  }

  /**
   * Starts the informers and the election; resolves once every informer has
   * listed, or after the sync timeout with the ones still retrying named in
   * the log (a missing permission must not keep pilot from serving xDS).
   */
  async start(): Promise<void> {
    if (this.options.rootCert) {
      this.unsubscribeRoot = this.options.rootCert.onChange(() => this.reconcileRootCerts());
    }
    for (const i of this.informers()) i.start();
    await waitForSync(this.informers(), this.options.syncTimeoutMs ?? 30_000, this.options.logger);
    this.leader.start();
  }

  async stop(): Promise<void> {
    this.unsubscribeRoot?.();
    this.statusWriter.setEnabled(false);
    await this.leader.stop();
    await Promise.all(this.informers().map((i) => i.stop()));
  }

  isLeader(): boolean {
    return this.leader.isLeader();
  }

  /** The registry built from the informers' caches now (rebuilt only after a change). */
  registry(): Registry {
    this.registryCache ??= buildKubeRegistry(
      {
        services: this.services.list(),
        endpointSlices: this.slices.list(),
        pods: this.pods.list(),
        nodes: this.nodes.list(),
        namespaces: this.namespaces.list(),
      },
      this.domainSuffix,
    );
    return this.registryCache;
  }

  /**
   * The service ports a pod serves (by namespace and pod name, as a sidecar's
   * node id names it): what inbound listeners for a sidecar in iptables
   * capture mode need. Undefined when the pod is not known.
   */
  workloadPorts(namespace: string, podName: string): WorkloadServicePort[] | undefined {
    const pod = this.pods.get(podName, namespace);
    return pod ? workloadServicePorts(pod, this.services.list(namespace), this.domainSuffix) : undefined;
  }

  /** A namespace's labels (`istio-injection`, `istio.io/rev`), or undefined when it is unknown. */
  namespaceLabels(namespace: string): Record<string, string> | undefined {
    const ns = this.namespaces.get(namespace);
    return ns ? { ...(ns.metadata?.labels ?? {}) } : undefined;
  }

  meshConfig(): MeshConfig {
    return this.mesh;
  }

  /** Informer state and write counts, for /debug and tests. */
  stats(): Record<string, unknown> {
    const informers: Record<string, unknown> = { ...this.configSource.informerStats() };
    for (const i of this.informers()) informers[i.resource] = i.stats();
    return {
      leader: this.isLeader(),
      identity: this.leader.identity,
      statusWrites: this.statusWriter.writeCount(),
      rootCertWrites: this.rootWriteCount,
      missingPermissions: this.permissions.missing(),
      informers,
    };
  }

  private registryChanged(): void {
    this.registryCache = undefined;
    if (this.registryNotify) return;
    this.registryNotify = true;
    setImmediate(() => {
      this.registryNotify = false;
      this.options.onRegistryChange?.();
    });
  }

  private meshChanged(cm: V1ConfigMap | undefined): void {
    const text = cm?.data?.[MESH_KEY];
    const networks = cm?.data?.[MESH_NETWORKS_KEY];
    const key = JSON.stringify([text, networks]);
    if (key === this.meshText) return;
    this.meshText = key;
    try {
      const mesh = parseMeshConfig(text, this.options.meshDefaults);
      // Istio keeps MeshNetworks beside MeshConfig in the same ConfigMap; absent, the flag's (if any) stays.
      this.mesh = networks === undefined ? mesh : { ...mesh, meshNetworks: parseMeshNetworks(networks) };
    } catch (err) {
      this.options.logger.error(
        { configMap: `${this.systemNamespace}/${MESH_CONFIGMAP}` },
        `${(err as Error).message}; keeping the previous mesh config`,
      );
      return;
    }
    this.options.onMeshChange?.(this.mesh);
  }

  private reconcileRootCerts(): void {
    for (const ns of this.namespaces.list()) if (ns.metadata?.name) this.ensureRootCert(ns.metadata.name);
  }

  /** Leader only: creates or corrects `istio-ca-root-cert` in a namespace. */
  private ensureRootCert(namespace: string): void {
    const pem = this.options.rootCert?.get();
    if (!pem || !this.isLeader() || !this.namespaces.hasSynced() || !this.rootCertMaps.hasSynced()) return;
    const ns = this.namespaces.get(namespace);
    if (!ns || ns.status?.phase === 'Terminating' || ns.metadata?.deletionTimestamp) return;
    const existing = this.rootCertMaps.get(ROOT_CERT_CONFIGMAP, namespace);
    if (existing?.data?.[ROOT_CERT_KEY] === pem) return;
    if (this.rootWrites.has(namespace)) return;
    this.rootWrites.add(namespace);
    const body: V1ConfigMap = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: {
        name: ROOT_CERT_CONFIGMAP,
        namespace,
        labels: { 'istio.io/config': 'true' },
        ...(existing?.metadata?.resourceVersion
          ? { resourceVersion: existing.metadata.resourceVersion }
          : {}),
      },
      data: { [ROOT_CERT_KEY]: pem },
    };
    this.rootWriteCount++;
    const verb = existing ? 'update' : 'create';
    const write = existing
      ? this.core.replaceNamespacedConfigMap({ name: ROOT_CERT_CONFIGMAP, namespace, body })
      : this.core.createNamespacedConfigMap({ namespace, body });
    write
      .then(() => this.permissions.granted(verb, 'configmaps'))
      .catch((err: unknown) => {
        const status = statusOf(err);
        if (status === 409) return; // changed meanwhile: the informer's next event brings it back here
        if (this.permissions.forbidden(err, verb, 'configmaps', { namespace })) return;
        this.options.logger.warn(
          { namespace, status, err: (err as Error).message },
          `cannot write ConfigMap ${namespace}/${ROOT_CERT_CONFIGMAP}`,
        );
      })
      .finally(() => this.rootWrites.delete(namespace));
  }
}
