import { type ConfigResource, configKey, type DestinationRuleSpec } from '@mizzen/api';
import { hostMatches, resolveShortName } from '../registry/model.js';
import { type AnalysisSettings, type AnalyzerMessage, analyzeVirtualServices } from './virtual-services.js';

/** A change `mizzen apply` or `mizzen delete` is about to make: resources applied, keys deleted. */
export interface ConfigChange {
  readonly applied?: readonly ConfigResource[];
  readonly deleted?: readonly string[];
}

/**
 * What Istio's analyzer says about a change, on the config as it will be
 * once the change is in force: the messages about a resource applied, and
 * those about a host whose DestinationRule is applied or deleted — a subset
 * the rule no longer defines is reported (IST0101) on every VirtualService
 * that still routes to it, as the next analysis would. Never a reason to
 * refuse the change: Istio's analyzer warns, the config is still accepted.
 */
export function analyzeChange(
  current: readonly ConfigResource[],
  change: ConfigChange,
  settings: AnalysisSettings,
): AnalyzerMessage[] {
  const byKey = new Map(current.map((r) => [configKey(r), r]));
  // As the store will keep them: an update keeps its creation time, a new resource is the youngest.
  const now = new Date().toISOString();
  const applied = (change.applied ?? []).map((r) => {
    const created = byKey.get(configKey(r))?.metadata.creationTimestamp ?? now;
    return { ...r, metadata: { ...r.metadata, creationTimestamp: created } };
  });
  const touched = new Set([...applied.map(configKey), ...(change.deleted ?? [])]);
  const after = [...current.filter((r) => !touched.has(configKey(r))), ...applied];

  const names = new Set(applied.map((r) => `${r.kind} ${r.metadata.namespace}/${r.metadata.name}`));
  // The hosts of every DestinationRule the change writes or removes, as it was and as it will be.
  const ruleHosts = [...applied, ...[...touched].flatMap((k) => byKey.get(k) ?? [])]
    .filter((r) => r.kind === 'DestinationRule')
    .map((r) =>
      resolveShortName((r.spec as DestinationRuleSpec).host, r.metadata.namespace, settings.domainSuffix),
    );
  return analyzeVirtualServices(after, settings).filter(
    (m) =>
      m.resources.some((r) => names.has(r)) ||
      (m.host !== undefined && ruleHosts.some((h) => hostMatches(h, m.host!))),
  );
}
