import type { CaBundle, KeyType } from '@mizzen/pki';
import type { Logger } from '@mizzen/runtime';
import type { FastifyInstance } from 'fastify';
import type { Authenticator } from './authn.js';
import { CaStore } from './ca-store.js';
import { CaGrpcServer } from './grpc-service.js';
import { createHttpServer } from './http-server.js';
import { type CitadelMetrics, createCitadelMetrics } from './metrics.js';
import { ServingCertificate } from './serving-cert.js';
import { WorkloadSigner } from './signer.js';

export interface CitadelOptions {
  logger: Logger;
  host: string;
  /** 0 picks a free port; `start()` reports the bound ones. */
  grpcPort: number;
  httpPort: number;
  caDir: string;
  trustDomain: string;
  authenticator: Authenticator;
  defaultTtlSeconds: number;
  maxTtlSeconds: number;
  selfSignedRootTtlSeconds: number;
  caKeyType: KeyType;
  /** Quiet time after CA file changes before reloading; default 250 ms. */
  reloadDebounceMs?: number;
  /** Periodic re-read of the CA files; default 30 s. */
  reloadPollMs?: number;
  /**
   * TLS on the gRPC port: the DNS names and IP addresses of citadel's serving
   * certificate (issued by its own CA), and its lifetime. Plaintext when absent
   * (`--grpc-plaintext`, for local debugging only).
   */
  grpcTls?: { names: readonly string[]; ttlSeconds?: number };
}

export interface CitadelPorts {
  grpc: number;
  http: number;
}

/** The CA process: CA store, signer, gRPC CreateCertificate and the HTTP port, wired together. */
export class Citadel {
  readonly store: CaStore;
  readonly metrics: CitadelMetrics = createCitadelMetrics();
  private readonly grpc: CaGrpcServer;
  /** The gRPC port's own certificate, when it serves TLS. */
  readonly serving?: ServingCertificate;
  private readonly http: FastifyInstance;
  private ready = false;

  constructor(private readonly options: CitadelOptions) {
    this.store = new CaStore({
      dir: options.caDir,
      trustDomain: options.trustDomain,
      logger: options.logger,
      selfSignedTtlSeconds: options.selfSignedRootTtlSeconds,
      keyType: options.caKeyType,
      // Certificates issued before a restart may live up to the max TTL; their roots are kept that long.
      retainRootsMs: options.maxTtlSeconds * 1000,
      ...(options.reloadDebounceMs !== undefined ? { debounceMs: options.reloadDebounceMs } : {}),
      ...(options.reloadPollMs !== undefined ? { pollIntervalMs: options.reloadPollMs } : {}),
    });
    const signer = new WorkloadSigner(this.store, {
      trustDomain: options.trustDomain,
      defaultTtlSeconds: options.defaultTtlSeconds,
      maxTtlSeconds: options.maxTtlSeconds,
    });
    this.grpc = new CaGrpcServer({
      authenticator: options.authenticator,
      signer,
      metrics: this.metrics,
      logger: options.logger,
    });
    this.http = createHttpServer({ store: this.store, metrics: this.metrics, isReady: () => this.ready });
    if (options.grpcTls) {
      this.serving = new ServingCertificate({
        store: this.store,
        names: options.grpcTls.names,
        logger: options.logger,
        ...(options.grpcTls.ttlSeconds !== undefined ? { ttlSeconds: options.grpcTls.ttlSeconds } : {}),
      });
    }
    this.store.on('reloaded', (bundle) => this.metrics.observeCa(bundle));
  }

  /** Loads or creates the CA, then serves. Throws CaStoreError or a listen error. */
  async start(): Promise<CitadelPorts & { ca: CaBundle }> {
    const { host, logger } = this.options;
    const ca = await this.store.init();
    this.metrics.observeCa(ca);
    const credentials = await this.serving?.start();
    const grpcPort = await this.grpc.listen(this.options.grpcPort, host, credentials);
    await this.http.listen({ port: this.options.httpPort, host });
    const address = this.http.server.address();
    const httpPort = typeof address === 'object' && address ? address.port : this.options.httpPort;
    this.store.watch();
    this.ready = true;
    if (!this.serving) {
      logger.warn(
        { grpcPort },
        'the CA serves gRPC without TLS (--grpc-plaintext): service-account tokens cross the network in clear; use it for local debugging only',
      );
    }
    logger.info(
      {
        grpcPort,
        httpPort,
        caDir: this.store.dir,
        ca: this.store.origin,
        trustDomain: this.options.trustDomain,
        authenticator: this.options.authenticator.kind,
        rootSerial: ca.rootInfo.serialNumber,
        rootExpiry: ca.rootInfo.notAfter.toISOString(),
        grpcTls: this.serving
          ? { names: this.options.grpcTls?.names, serial: this.serving.info()?.serial }
          : 'plaintext (--grpc-plaintext)',
      },
      'citadel ready',
    );
    return { grpc: grpcPort, http: httpPort, ca };
  }

  async stop(): Promise<void> {
    this.ready = false;
    this.store.close();
    this.serving?.stop();
    await Promise.all([this.grpc.close(), this.http.close()]);
  }
}
