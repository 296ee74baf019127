import { type ConfigResource, configKey } from '@mizzen/api';
import { analyze } from './analyze.js';
import type { AnalysisInput } from './context.js';
import { hostMatches, resolveShortName } from './hosts.js';
import type { AnalysisMessage } from './messages.js';

/** A change `mizzen apply` or `mizzen delete` is about to make: resources applied, keys deleted. */
export interface ConfigChange {
  readonly applied?: readonly ConfigResource[];
  readonly deleted?: readonly string[];
}

/** The config as it will be once the change is in force: an update keeps its creation time, a new resource is the youngest. */
export function applyChange(current: readonly ConfigResource[], change: ConfigChange): ConfigResource[] {
  const byKey = new Map(current.map((r) => [configKey(r), r]));
  const now = new Date().toISOString();
  const applied = (change.applied ?? []).map(
    (r) =>
      ({
        ...r,
        metadata: {
          ...r.metadata,
          creationTimestamp: byKey.get(configKey(r))?.metadata.creationTimestamp ?? now,
        },
      }) as ConfigResource,
  );
  const touched = new Set([...applied.map(configKey), ...(change.deleted ?? [])]);
  return [...current.filter((r) => !touched.has(configKey(r))), ...applied];
}

/**
 * What Istio's analyzer says about a change, on the config as it will be
 * once the change is in force: the messages about a resource applied, and
 * those about a host whose DestinationRule is applied or deleted — a subset
 * the rule no longer defines is reported (IST0101) on every VirtualService
 * that still routes to it, as the next analysis would. Never a reason to
 * refuse the change: Istio's analyzer warns, the config is still accepted.
 */
export function analyzeChange(input: AnalysisInput, change: ConfigChange): AnalysisMessage[] {
  const current = input.resources;
  const byKey = new Map(current.map((r) => [configKey(r), r]));
  const applied = change.applied ?? [];
  const touched = [...applied.map(configKey), ...(change.deleted ?? [])];
  const names = new Set(applied.map((r) => `${r.kind} ${r.metadata.namespace}/${r.metadata.name}`));
  // The hosts of every DestinationRule the change writes or removes, as it was and as it will be.
  const ruleHosts = [...applied, ...touched.flatMap((k) => byKey.get(k) ?? [])]
    .filter((r) => r.kind === 'DestinationRule')
    .map((r) => resolveShortName(r.spec.host, r.metadata.namespace, input.settings.domainSuffix));
  return analyze({ ...input, resources: applyChange(current, change) }).filter(
    (m) =>
      (m.origin && names.has(`${m.origin.kind} ${m.origin.namespace}/${m.origin.name}`)) ||
      (m.host !== undefined && ruleHosts.some((h) => hostMatches(h, m.host!))),
  );
}
