import os from 'node:os';
import path from 'node:path';
import { type ConfigSource, DirectorySource, FileStore, formatIssue } from '@mizzen/api';
import { componentTracer, type Logger, SpanStatusCode } from '@mizzen/runtime';
import { AdsServer, shortType } from '@mizzen/xds';
import Fastify, { type FastifyInstance } from 'fastify';
import { AggregateConfig } from './config/aggregate.js';
import { LocalCredentialStore } from './credentials/local-store.js';
import { registerConfigApi } from './http/config-api.js';
import { registerDebugRoutes } from './http/debug.js';
import { KubeController, type KubeControllerOptions } from './kube/controller.js';
import { type RootCertOrigin, RootCertSource } from './kube/root-cert.js';
import { DEFAULT_MESH_CONFIG, type MeshConfig } from './networking/mesh-config.js';
import { AutoRegistration } from './registry/auto-registration.js';
import { type WebhookOptions, WebhookServer } from './webhooks/server.js';
import { createPilotMetrics, type PilotMetrics } from './xds/metrics.js';
import { PushController } from './xds/push-controller.js';

/** Kubernetes mode: the API server as config source and service registry (see kube/controller.ts). */
export type PilotKubernetesOptions = Omit<
  KubeControllerOptions,
  'logger' | 'meshDefaults' | 'rootCert' | 'onRegistryChange' | 'onMeshChange'
> & {
  /** The root certificate to publish as `istio-ca-root-cert` in every namespace. */
  rootCert?: RootCertOrigin;
};

const tracer = componentTracer('pilot');

export interface PilotOptions {
  logger: Logger;
  /** Address servers bind (127.0.0.1 in local mode). */
  host: string;
  xdsPort: number;
  httpPort: number;
  /** Directories of Istio YAML, watched for changes. */
  configDirs: string[];
  /** The persistent store `mizzen apply` writes (survives restarts). */
  storeFile: string;
  /** Where auto-registered WorkloadEntries are kept (survive a pilot restart, not a new mesh). */
  registrationsFile: string;
  mesh?: Partial<MeshConfig>;
  /** How long an auto-registered workload outlives its proxy's connection. */
  registrationGraceMs?: number;
  debounceMs?: number;
  kubernetes?: PilotKubernetesOptions;
  /**
   * Where the mesh root certificate comes from (citadel's `/root-cert.pem` or a
   * file). Proxies get it as the ROOTCA secret; in Kubernetes mode it is also
   * kept in every namespace's `istio-ca-root-cert`.
   */
  rootCert?: RootCertOrigin;
  /** How often the root certificate is re-read (a rotated root reaches every proxy within this); default 10 s. */
  rootCertRefreshMs?: number;
  /** The injection and validation webhooks (HTTPS, 15017 in a pod). */
  webhook?: Omit<WebhookOptions, 'logger' | 'namespaceLabels'>;
  /**
   * The local credential store (`mizzen create secret tls` writes it) that
   * gateways' `credentialName`s come from outside Kubernetes; default
   * `credentials/` next to the store file. Kubernetes mode reads Secrets.
   */
  credentialsDir?: string;
}

/** Pilot ("istiod"): config sources → registry → xDS, plus the config and debug HTTP API. */
export class Pilot {
  private readonly metrics: PilotMetrics = createPilotMetrics();
  private readonly store: FileStore;
  private readonly registrations: FileStore;
  private readonly config: AggregateConfig;
  private readonly ads: AdsServer;
  private readonly push: PushController;
  private readonly registration: AutoRegistration;
  private readonly http: FastifyInstance;
  private readonly log: Logger;
  private ready = false;
  /** Kubernetes mode's controller, when on. */
  readonly kube?: KubeController;
  private readonly rootCert?: RootCertSource;
  private readonly webhooks?: WebhookServer;
  private readonly localCredentials?: LocalCredentialStore;

  constructor(private readonly options: PilotOptions) {
    this.log = options.logger;
    const mesh = { ...DEFAULT_MESH_CONFIG, ...options.mesh };
    this.store = new FileStore(options.storeFile, { name: `store:${options.storeFile}` });
    this.registrations = new FileStore(options.registrationsFile, {
      name: `registrations:${options.registrationsFile}`,
    });
    const sources: ConfigSource[] = [
      ...options.configDirs.map(
        (dir) =>
          new DirectorySource(dir, {
            onIssues: (issues) => {
              for (const i of issues) this.log.warn({ source: i.source }, formatIssue(i));
            },
          }),
      ),
      this.registrations,
      this.store,
    ];
    const rootOrigin = options.rootCert ?? options.kubernetes?.rootCert;
    this.rootCert = rootOrigin
      ? new RootCertSource(rootOrigin, this.log, options.rootCertRefreshMs ?? 10_000)
      : undefined;
    if (options.kubernetes) {
      const { rootCert: _origin, ...kubeOptions } = options.kubernetes;
      this.kube = new KubeController({
        ...kubeOptions,
        logger: this.log,
        meshDefaults: mesh,
        rootCert: this.rootCert,
        onRegistryChange: () => this.push.requestPush('kubernetes registry changed'),
        onMeshChange: (m) => this.push.setMesh(m),
      });
      // Kubernetes resources come before the `mizzen apply` store, which still wins on the same name.
      sources.splice(sources.length - 1, 0, this.kube.configSource);
    }
    if (options.webhook) {
      this.webhooks = new WebhookServer({
        ...options.webhook,
        logger: this.log,
        namespaceLabels: (ns) => this.kube?.namespaceLabels(ns),
      });
    }
    this.config = new AggregateConfig(sources);
    this.registration = new AutoRegistration(this.registrations, this.log, options.registrationGraceMs);
    this.ads = new AdsServer({
      logger: this.log,
      onStreamOpen: (node) => {
        const proxy = this.push.proxyConnected(node);
        if (proxy) this.registration.connected(proxy);
      },
      onStreamClose: (node) => {
        const proxy = this.push.proxyDisconnected(node);
        if (proxy) this.registration.disconnected(proxy);
      },
      onNack: (node, typeUrl) => {
        const type = String(shortType(typeUrl)).toLowerCase();
        this.metrics.rejects.inc({ type });
        tracer
          .startSpan('pilot.xds.reject', { attributes: { 'mizzen.proxy': node.id, 'mizzen.xds.type': type } })
          .setStatus({ code: SpanStatusCode.ERROR, message: `${node.id} rejected ${type}` })
          .end();
      },
      onAck: (_node, _typeUrl, _version, latencyMs) => {
        if (latencyMs !== undefined) this.metrics.convergence.observe(latencyMs / 1000);
      },
    });
    if (!this.kube) {
      this.localCredentials = new LocalCredentialStore(
        options.credentialsDir ?? path.join(path.dirname(options.storeFile), 'credentials'),
        this.log,
      );
    }
    const credentials = this.kube?.credentials ?? this.localCredentials!;
    this.push = new PushController({
      ads: this.ads,
      mesh,
      logger: this.log,
      metrics: this.metrics,
      debounceMs: options.debounceMs,
      registries: () => (this.kube ? [this.kube.registry()] : []),
      credentials,
    });
    // A new, rotated or removed certificate reaches the gateways with the next push: no restart, no dropped connection.
    credentials.onChange(() => this.push.requestPush('credentials changed'));
    this.rootCert?.onChange((pem) => this.push.setRootCert(pem));
    this.http = Fastify({ logger: false, bodyLimit: 8 * 1024 * 1024 });
    this.http.get('/ready', async (_req, reply) =>
      this.ready ? { status: 'ready' } : reply.code(503).send({ status: 'starting' }),
    );
    this.http.get('/metrics', async (_req, reply) => {
      this.updateGauges();
      reply.header('content-type', this.metrics.registry.contentType);
      return this.metrics.registry.metrics();
    });
    registerDebugRoutes(this.http, {
      ads: this.ads,
      push: this.push,
      config: this.config,
      instance: process.env.POD_NAME ?? `pilot-${os.hostname()}`,
    });
    // Kubernetes mode: leadership, write counts and every informer's list/watch state.
    this.http.get('/debug/kubez', async (_req, reply) =>
      this.kube ? this.kube.stats() : reply.code(404).send({ error: 'pilot is not in Kubernetes mode' }),
    );
    registerConfigApi(this.http, { store: this.store, config: this.config, mesh: () => this.push.mesh() });
  }

  /** Loads config, then serves xDS and HTTP. Resolves with the bound ports. */
  async start(): Promise<{ xdsPort: number; httpPort: number; webhookPort?: number }> {
    await this.rootCert?.start();
    await this.kube?.start();
    this.localCredentials?.start();
    await this.config.start();
    this.config.onChange(() => this.push.setConfig(this.config.list()));
    this.push.setConfig(this.config.list(), 'startup');
    this.push.pushNow('startup');
    this.registration.start();
    const xdsPort = await this.ads.listen(this.options.xdsPort, this.options.host);
    await this.http.listen({ port: this.options.httpPort, host: this.options.host });
    const address = this.http.server.address();
    const httpPort = typeof address === 'object' && address ? address.port : this.options.httpPort;
    const webhookPort = await this.webhooks?.listen(this.options.host);
    this.ready = true;
    this.log.info({ xdsPort, httpPort, webhookPort, resources: this.config.list().length }, 'pilot ready');
    return { xdsPort, httpPort, ...(webhookPort !== undefined ? { webhookPort } : {}) };
  }

  async stop(): Promise<void> {
    this.ready = false;
    this.push.stop();
    this.registration.stop();
    await this.ads.close();
    await this.http.close();
    await this.webhooks?.close();
    await this.config.stop();
    await this.kube?.stop();
    this.localCredentials?.stop();
    this.rootCert?.stop();
  }

  private updateGauges(): void {
    this.metrics.services.set(this.push.pushContext().registry.services().length);
    this.metrics.configs.reset();
    for (const r of this.config.list()) this.metrics.configs.inc({ kind: r.kind });
    const nacked = { cds: 0, eds: 0, lds: 0, rds: 0 };
    for (const stream of this.ads.status()) {
      for (const t of stream.types) {
        const key = String(t.type).toLowerCase() as keyof typeof nacked;
        if (t.state === 'NACKED' && key in nacked) nacked[key]++;
      }
    }
    for (const [type, n] of Object.entries(nacked))
      this.metrics.rejectedNow[type as keyof typeof nacked].set(n);
  }
}
