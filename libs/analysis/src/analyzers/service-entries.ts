import type { AnalysisContext } from '../context.js';
import { type AnalysisMessage, msg, originOf } from '../messages.js';

/**
 * IST0134 ServiceEntryAddressesRequired: a ServiceEntry without addresses
 * with a TCP port (or one whose protocol is unset): plain TCP cannot be told
 * apart by host, only by address.
 */
export function analyzeServiceEntryAddresses(ctx: AnalysisContext): AnalysisMessage[] {
  return ctx.of('ServiceEntry').flatMap((se) => {
    if (se.spec.addresses?.length) return [];
    const tcp = (se.spec.ports ?? []).some((p) => !p.protocol || p.protocol.toUpperCase() === 'TCP');
    return tcp ? [msg.serviceEntryAddressesRequired(originOf(se))] : [];
  });
}
