/**
 * What happened to one request, in Envoy's terms: the response flags
 * (`NR` no route, `UH` no healthy upstream, `UF` upstream connection failure,
 * `UC` upstream connection termination, `UT` upstream timeout, `LR` the
 * proxy reset the upstream request itself, `UR` the upstream reset it
 * (an HTTP/2 stream refused), `URX` retry limit exceeded, `DC`
 * downstream connection termination, `NC` no cluster, `UO` upstream overflow
 * (circuit breaking, or a retry the retry budget refused), `DI` delay
 * injected, `FI` fault injected, `RL` rate limited, `UAEX` denied by an
 * external authorizer) and where it went. Access logs and metrics read it.
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
  | 'LR'
  | 'UR';

/**
 * Envoy's order of the flags (their bit order in StreamInfo::CoreResponseFlag),
 * which %RESPONSE_FLAGS% and the response_flags label print them in.
 */
const FLAG_ORDER: readonly ResponseFlag[] = [
  'UH',
  'UT',
  'LR',
  'UR',
  'UF',
  'UC',
  'UO',
  'NR',
  'DI',
  'FI',
  'RL',
  'UAEX',
  'RLSE',
  'DC',
  'URX',
  'DPE',
  'NC',
];

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

  /** `UC,URX` or `-`, as Envoy's %RESPONSE_FLAGS% prints them. */
  flagString(): string {
    return this.flags.size ? FLAG_ORDER.filter((f) => this.flags.has(f)).join(',') : '-';
  }
}
