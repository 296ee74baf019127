/**
 * What happened to one request, in Envoy's terms: the response flags
 * (`NR` no route, `UH` no healthy upstream, `UF` upstream connection failure,
 * `UC` upstream connection termination, `UT` upstream timeout, `URX` retry
 * limit exceeded, `DC` downstream connection termination, `NC` no cluster,
 * `UO` upstream overflow (circuit breaking), `DI` delay injected, `FI` fault
 * injected, `RL` rate limited, `UAEX` denied by an external authorizer)
 * and where it went. Access logs and metrics read it.
 */
import type { RequestAuth } from '@mizzen/policy';
import type { AuthzOutcomeRecord, PeerMetadata } from '../observe/records.js';

export type ResponseFlag =
  | 'NR'
  | 'UH'
  | 'UF'
  | 'UC'
  | 'UT'
  | 'URX'
  | 'DC'
  | 'NC'
  | 'UO'
  | 'DPE'
  | 'DI'
  | 'FI'
  | 'RL'
  | 'RLSE'
  | 'UAEX'
  | 'LR';

export class StreamInfo {
  readonly startTime = performance.now();
  readonly flags = new Set<ResponseFlag>();
  routeName?: string;
  upstreamCluster?: string;
  upstreamHost?: string;
  attempts = 0;
  responseCode?: number;
  /** Milliseconds from sending upstream to its response headers. */
  upstreamServiceTimeMs?: number;
  requestBytes = 0;
  responseBytes = 0;
  grpcStatus?: string;
  /** The upstream hop was mutual TLS. */
  upstreamMtls = false;
  /** The upstream hop's TLS, which knows the identity the host proved once connected. */
  upstreamTls?: { peerPrincipal(): string | undefined };
  /** The sidecar on the other end (metadata exchange): the caller inbound, the callee outbound. */
  peer?: PeerMetadata;
  /** What jwt_authn verified (Istio's request.auth.*); absent when the request carried no token. */
  requestAuth?: RequestAuth;
  /** Envoy's dynamic metadata, by filter namespace (jwt_authn payloads, RBAC shadow results). */
  readonly dynamicMetadata: Record<string, Record<string, unknown>> = {};
  /** How authorization decided, for logs and metrics. */
  authz?: AuthzOutcomeRecord;

  flag(f: ResponseFlag): void {
    this.flags.add(f);
  }

  /** `UH,URX` or `-`, as Envoy's %RESPONSE_FLAGS% prints them. */
  flagString(): string {
    return this.flags.size ? [...this.flags].join(',') : '-';
  }
}
