import { analyzeAnnotations } from './analyzers/annotations.js';
import { analyzeDelegates } from './analyzers/delegates.js';
import { analyzeDestinationRuleTls } from './analyzers/destination-rules.js';
import { analyzeDestinations } from './analyzers/destinations.js';
import { analyzeGatewayReferences } from './analyzers/gateway-references.js';
import { analyzeConflictingGateways, analyzeGatewayCredentials } from './analyzers/gateways.js';
import { analyzeMeshHosts } from './analyzers/mesh-hosts.js';
import { analyzeRouteMatches } from './analyzers/route-matches.js';
import { analyzeServiceEntryAddresses } from './analyzers/service-entries.js';
import {
  analyzeAuthorizationSelectors,
  analyzeSidecarSelectors,
  analyzeTelemetrySelectors,
} from './analyzers/workload-selectors.js';
import { AnalysisContext, type AnalysisInput } from './context.js';
import { sortMessages } from './format.js';
import type { AnalysisMessage } from './messages.js';

export type Analyzer = (ctx: AnalysisContext) => AnalysisMessage[];

/** Every analyzer, each over the whole config. */
export const ANALYZERS: readonly Analyzer[] = [
  analyzeDestinations,
  analyzeGatewayReferences,
  analyzeDelegates,
  analyzeMeshHosts,
  analyzeRouteMatches,
  analyzeSidecarSelectors,
  analyzeTelemetrySelectors,
  analyzeAuthorizationSelectors,
  analyzeConflictingGateways,
  analyzeGatewayCredentials,
  analyzeDestinationRuleTls,
  analyzeServiceEntryAddresses,
  analyzeAnnotations,
];

/** What Istio's analyzers say about a config, in istioctl's order. */
export function analyze(input: AnalysisInput): AnalysisMessage[] {
  const ctx = new AnalysisContext(input);
  return sortMessages(ANALYZERS.flatMap((a) => a(ctx)));
}
