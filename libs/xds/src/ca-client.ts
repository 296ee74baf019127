import * as grpc from '@grpc/grpc-js';
import {
  createCertificateMethod,
  type IstioCertificateRequest,
  type IstioCertificateResponse,
  type JsonValue,
} from './ca-service.js';

export interface CaClientOptions {
  /** host:port of the CA (citadel's 8060). */
  address: string;
  /**
   * The roots (PEM) the CA's serving certificate must chain to: the channel
   * is TLS and the certificate must be for the address's host (a DNS name or
   * an IP address). Istio's agent verifies istiod with the mesh root the same way.
   */
  rootCertificates?: string;
  /** Other channel credentials; plaintext only when neither this nor `rootCertificates` is given. */
  credentials?: grpc.ChannelCredentials;
  /** Deadline for each CreateCertificate call; default 10 s. */
  deadlineMs?: number;
}

export interface CreateCertificateOptions {
  csrPem: string;
  /** Requested validity; 0 or absent leaves it to the CA's default. */
  ttlSeconds?: number;
  /** Proof of identity, sent as `authorization: Bearer <token>`. */
  token: string;
  /** Sent as `ClusterID` metadata, as Istio's agent does. */
  clusterId?: string;
  /** Node metadata for the request's Struct. */
  metadata?: Record<string, JsonValue>;
}

/** A failed CreateCertificate call, with the gRPC status the CA answered. */
export class CaClientError extends Error {
  override readonly name = 'CaClientError';

  constructor(
    readonly code: grpc.status,
    readonly details: string,
  ) {
    super(`CreateCertificate failed: ${grpc.status[code] ?? code}: ${details}`);
  }

  /** UNAUTHENTICATED, INVALID_ARGUMENT, … */
  get codeName(): string {
    return grpc.status[this.code] ?? String(this.code);
  }
}

/**
 * The agent side of Istio's certificate service: sends a CSR with a bearer
 * token, returns the chain (leaf first, root last). One channel, reused.
 */
export class CaClient {
  private readonly client: grpc.Client;
  private readonly deadlineMs: number;

  constructor(options: CaClientOptions) {
    const credentials =
      options.credentials ??
      (options.rootCertificates !== undefined
        ? grpc.credentials.createSsl(Buffer.from(options.rootCertificates))
        : grpc.credentials.createInsecure());
    this.client = new grpc.Client(options.address, credentials);
    this.deadlineMs = options.deadlineMs ?? 10_000;
  }

  createCertificate(options: CreateCertificateOptions): Promise<string[]> {
    const ttl = options.ttlSeconds ?? 0;
    if (!Number.isInteger(ttl) || ttl < 0) {
      return Promise.reject(new TypeError(`ttlSeconds must be a non-negative integer, got ${ttl}`));
    }
    const metadata = new grpc.Metadata();
    metadata.set('authorization', `Bearer ${options.token}`);
    if (options.clusterId) metadata.set('ClusterID', options.clusterId);
    const request: IstioCertificateRequest = {
      csr: options.csrPem,
      validity_duration: ttl,
      metadata: options.metadata ?? {},
    };
    const m = createCertificateMethod;
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest<IstioCertificateRequest, IstioCertificateResponse>(
        m.path,
        m.requestSerialize,
        m.responseDeserialize,
        request,
        metadata,
        { deadline: Date.now() + this.deadlineMs },
        (err, response) => {
          if (err) {
            reject(new CaClientError(err.code ?? grpc.status.UNKNOWN, err.details || err.message));
            return;
          }
          const chain = response?.cert_chain ?? [];
          if (chain.length === 0) {
            reject(new CaClientError(grpc.status.INTERNAL, 'the CA returned an empty certificate chain'));
            return;
          }
          resolve(chain);
        },
      );
    });
  }

  close(): void {
    this.client.close();
  }
}
