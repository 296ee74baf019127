import * as grpc from '@grpc/grpc-js';
import { componentTracer, type Logger, SpanKind, SpanStatusCode } from '@mizzen/runtime';
import {
  type CreateCertificateHandler,
  type IstioCertificateServiceHandlers,
  istioCertificateService,
} from '@mizzen/xds';
import { AuthError, type Authenticator, bearerToken, type Caller } from './authn.js';
import type { CitadelMetrics, FailureReason } from './metrics.js';
import { SignError, type WorkloadSigner } from './signer.js';

export interface CaServiceDeps {
  authenticator: Authenticator;
  signer: WorkloadSigner;
  metrics: CitadelMetrics;
  logger: Logger;
}

const tracer = componentTracer('citadel');
/** A refusal as gRPC sends it, with the metric reason. */
interface Refusal {
  code: grpc.status;
  reason: FailureReason;
  message: string;
}

function refusal(err: unknown): Refusal | undefined {
  if (err instanceof AuthError) {
    const reason: FailureReason =
      err.status === 'UNAVAILABLE'
        ? 'AUTH_UNAVAILABLE'
        : err.status === 'PERMISSION_DENIED'
          ? 'PERMISSION_DENIED'
          : 'UNAUTHENTICATED';
    return { code: grpc.status[err.status], reason, message: err.message };
  }
  if (err instanceof SignError)
    return { code: grpc.status[err.status], reason: err.reason, message: err.message };
  return undefined;
}

/** Istio's request metadata key for a certificate asked on behalf of another identity. */
export const IMPERSONATED_IDENTITY = 'ImpersonatedIdentity';

/**
 * A caller asking for someone else's certificate (Istio's
 * `ImpersonatedIdentity`) is refused: only node proxies trusted by a node
 * authorizer may do that in Istio, and there are none here. Asking for one's
 * own identity this way is allowed.
 */
function refuseImpersonation(requested: unknown, caller: Caller, trustDomain: string): void {
  if (requested === undefined || requested === null || requested === '') return;
  const own = `spiffe://${trustDomain}/ns/${caller.namespace}/sa/${caller.serviceAccount}`;
  if (requested === own) return;
  throw new AuthError(
    'PERMISSION_DENIED',
    `the caller proved ${own} and may not request a certificate for ${String(requested)}`,
  );
}

/**
 * `CreateCertificate`: authenticate the bearer token, check the TTL and the
 * CSR, sign for the proven identity only, answer [leaf, intermediates…, root].
 * Every refusal is one gRPC status with one sentence; nothing is issued.
 */
export function createCertificateHandler(deps: CaServiceDeps): CreateCertificateHandler {
  const { authenticator, signer, metrics, logger } = deps;
  return (call, callback) => {
    metrics.csrCount.inc();
    const peer = call.getPeer();
    const clusterId = call.metadata.get('clusterid')[0]?.toString();
    // Citadel's own trace (OpenTelemetry, when OTEL_EXPORTER_OTLP_ENDPOINT is set): one server span per CSR.
    const span = tracer.startSpan('istio.v1.auth.IstioCertificateService/CreateCertificate', {
      kind: SpanKind.SERVER,
      attributes: {
        'rpc.system': 'grpc',
        'rpc.service': 'istio.v1.auth.IstioCertificateService',
        'rpc.method': 'CreateCertificate',
      },
    });
    const answer: typeof callback = (err, value) => {
      if (err) {
        span.setAttribute('rpc.grpc.status_code', err.code ?? grpc.status.UNKNOWN);
        span.setStatus({ code: SpanStatusCode.ERROR, message: err.details ?? '' });
      } else span.setAttribute('rpc.grpc.status_code', grpc.status.OK);
      span.end();
      callback(err, value);
    };
    void (async () => {
      try {
        const caller = await authenticator.authenticate(bearerToken(call.metadata));
        refuseImpersonation(call.request.metadata?.[IMPERSONATED_IDENTITY], caller, signer.trustDomain);
        const issued = await signer.sign({
          csrPem: call.request.csr,
          requestedTtlSeconds: call.request.validity_duration,
          caller,
        });
        const asked = issued.requestedUris;
        if (asked.length && (asked.length !== 1 || asked[0] !== issued.identity)) {
          logger.warn(
            { peer, requested: asked.slice(0, 10), issued: issued.identity },
            'the CSR asked for identities the caller did not prove; issuing the proven identity only',
          );
        }
        metrics.success.inc();
        span.setAttribute('mizzen.identity', issued.identity);
        logger.info(
          {
            peer,
            identity: issued.identity,
            serial: issued.serialNumber,
            notAfter: issued.notAfter.toISOString(),
            ttlSeconds: issued.ttlSeconds,
            keyType: issued.keyType,
            authenticator: authenticator.kind,
            ...(clusterId ? { clusterId } : {}),
          },
          'issued a workload certificate',
        );
        answer(null, { cert_chain: issued.chain });
      } catch (err) {
        const r = refusal(err);
        if (!r) {
          logger.error({ peer, err: (err as Error).message }, 'CreateCertificate failed unexpectedly');
          metrics.signErrors.inc({ reason: 'CERT_GEN_ERROR' });
          answer({ code: grpc.status.INTERNAL, details: 'internal error while signing the certificate' });
          return;
        }
        metrics.signErrors.inc({ reason: r.reason });
        if (r.reason === 'UNAUTHENTICATED' || r.reason === 'PERMISSION_DENIED') metrics.authnFailures.inc();
        if (r.reason === 'CSR_ERROR') metrics.csrParsingErrors.inc();
        logger.warn(
          { peer, code: grpc.status[r.code], reason: r.reason, message: r.message },
          'CreateCertificate refused',
        );
        span.setAttribute('mizzen.refusal', r.reason);
        answer({ code: r.code, details: r.message });
      }
    })();
  };
}

/** The CA's gRPC server. CSRs are bounded at 64 KiB; messages above 256 KiB never reach the handler. */
export class CaGrpcServer {
  private readonly server = new grpc.Server({ 'grpc.max_receive_message_length': 256 * 1024 });

  constructor(deps: CaServiceDeps) {
    const handlers: IstioCertificateServiceHandlers = { CreateCertificate: createCertificateHandler(deps) };
    this.server.addService(istioCertificateService, handlers);
  }

  /** Serves on `host:port` with `credentials` (TLS), or in plaintext when none are given. */
  listen(port: number, host: string, credentials?: grpc.ServerCredentials): Promise<number> {
    const address = `${host.includes(':') ? `[${host}]` : host}:${port}`;
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, credentials ?? grpc.ServerCredentials.createInsecure(), (err, bound) =>
        err ? reject(new Error(`cannot serve gRPC on ${address}: ${err.message}`)) : resolve(bound),
      );
    });
  }

  /** Lets calls in flight finish for up to `graceMs`, then cuts the rest. */
  close(graceMs = 2000): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      timer.unref();
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
