import type { CaBundle } from '@mizzen/pki';
import { Counter, Gauge, Registry } from 'prom-client';

/** Why a request got no certificate: Istio's CA error types plus the authentication outcomes. */
export type FailureReason =
  | 'UNAUTHENTICATED'
  | 'PERMISSION_DENIED'
  | 'AUTH_UNAVAILABLE'
  | 'CSR_ERROR'
  | 'TTL_ERROR'
  | 'CERT_GEN_ERROR'
  | 'CA_NOT_READY';

/** citadel's metrics, under the names Istio's CA exports so existing dashboards work. */
export interface CitadelMetrics {
  registry: Registry;
  csrCount: Counter;
  success: Counter;
  signErrors: Counter<'reason'>;
  authnFailures: Counter;
  csrParsingErrors: Counter;
  rootExpiry: Gauge;
  chainExpiry: Gauge;
  /** Sets the expiry gauges from the CA in use. */
  observeCa(bundle: CaBundle): void;
}

export function createCitadelMetrics(): CitadelMetrics {
  const registry = new Registry();
  const rootExpiry = new Gauge({
    name: 'citadel_server_root_cert_expiry_timestamp',
    help: 'The unix timestamp, in seconds, when the root certificate expires.',
    registers: [registry],
  });
  const chainExpiry = new Gauge({
    name: 'citadel_server_cert_chain_expiry_timestamp',
    help: 'The unix timestamp, in seconds, when the earliest certificate of the signing chain expires.',
    registers: [registry],
  });
  return {
    registry,
    csrCount: new Counter({
      name: 'citadel_server_csr_count',
      help: 'The number of CSRs received by the CA server.',
      registers: [registry],
    }),
    success: new Counter({
      name: 'citadel_server_success_cert_issuance_count',
      help: 'The number of certificates issued successfully.',
      registers: [registry],
    }),
    signErrors: new Counter({
      name: 'citadel_server_csr_sign_err_count',
      help: 'The number of CSRs that got no certificate, by reason.',
      labelNames: ['reason'],
      registers: [registry],
    }),
    authnFailures: new Counter({
      name: 'citadel_server_authentication_failure_count',
      help: 'The number of CSRs whose caller could not be authenticated.',
      registers: [registry],
    }),
    csrParsingErrors: new Counter({
      name: 'citadel_server_csr_parsing_err_count',
      help: 'The number of CSRs that could not be parsed or were refused.',
      registers: [registry],
    }),
    rootExpiry,
    chainExpiry,
    observeCa(bundle) {
      rootExpiry.set(Math.floor(bundle.rootInfo.notAfter.getTime() / 1000));
      chainExpiry.set(Math.floor(bundle.chainExpiry.getTime() / 1000));
    },
  };
}
