import type { ClientTLSSettings } from '@mizzen/api';
import type { AnalysisContext } from '../context.js';
import { type AnalysisMessage, msg, originOf } from '../messages.js';

/** SIMPLE or MUTUAL TLS that verifies no server certificate: no CA given, no credential, verification not skipped on purpose. */
function unverified(tls: ClientTLSSettings | undefined): string | undefined {
  const mode = tls?.mode;
  if (mode !== 'SIMPLE' && mode !== 'MUTUAL') return undefined;
  if (tls?.caCertificates || tls?.credentialName || tls?.insecureSkipVerify) return undefined;
  return mode;
}

/**
 * IST0128 NoServerCertificateVerificationDestinationLevel and IST0129
 * NoServerCertificateVerificationPortLevel: TLS origination that accepts any
 * server certificate.
 */
export function analyzeDestinationRuleTls(ctx: AnalysisContext): AnalysisMessage[] {
  const out: AnalysisMessage[] = [];
  for (const dr of ctx.of('DestinationRule')) {
    const policy = dr.spec.trafficPolicy;
    const mode = unverified(policy?.tls);
    if (mode) out.push(msg.noServerCertificateVerificationDestinationLevel(originOf(dr), mode, dr.spec.host));
    for (const p of policy?.portLevelSettings ?? []) {
      const portMode = unverified(p.tls);
      if (portMode)
        out.push(
          msg.noServerCertificateVerificationPortLevel(
            originOf(dr),
            portMode,
            dr.spec.host,
            String(p.port?.number ?? ''),
          ),
        );
    }
  }
  return out;
}
