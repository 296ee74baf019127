import type { ConfigResource, Kind } from '@mizzen/api';
import type { AnalysisContext, Workload } from '../context.js';
import { labelsMatch, selectorText } from '../hosts.js';
import { type AnalysisMessage, fullName, msg, type Origin, originOf } from '../messages.js';

/**
 * One kind of resource of which at most one may apply to a workload (Sidecar,
 * Telemetry): how it selects, and the messages for several that apply alike.
 */
interface SelectingKind<K extends Kind> {
  kind: K;
  selector: (r: ConfigResource<K>) => Record<string, string> | undefined;
  sameWorkload: (origin: Origin, names: string[], namespace: string, workload: string) => AnalysisMessage;
  noSelector: (origin: Origin, names: string[], namespace: string) => AnalysisMessage;
  /** The message for a selector that picks no workload, if the kind has one. */
  selectsNothing?: (origin: Origin, labels: string) => AnalysisMessage;
}

function hasSelector(labels: Record<string, string> | undefined): labels is Record<string, string> {
  return labels !== undefined && Object.keys(labels).length > 0;
}

/** The workloads selected by more than one resource, each with those resources (oldest first). */
export function workloadConflicts<T extends ConfigResource>(
  resources: readonly T[],
  selector: (r: T) => Record<string, string> | undefined,
  workloads: readonly Workload[],
): { workload: Workload; selecting: T[] }[] {
  return workloads.flatMap((workload) => {
    const selecting = resources.filter((r) => {
      const labels = selector(r);
      return (
        r.metadata.namespace === workload.namespace &&
        hasSelector(labels) &&
        labelsMatch(labels, workload.labels)
      );
    });
    return selecting.length > 1 ? [{ workload, selecting }] : [];
  });
}

function analyzeKind<K extends Kind>(ctx: AnalysisContext, k: SelectingKind<K>): AnalysisMessage[] {
  const out: AnalysisMessage[] = [];
  const resources = ctx.of(k.kind);
  const namespaceWide = new Map<string, ConfigResource<K>[]>();
  for (const r of resources.filter((r) => !hasSelector(k.selector(r))))
    namespaceWide.set(r.metadata.namespace, [...(namespaceWide.get(r.metadata.namespace) ?? []), r]);
  for (const [ns, list] of namespaceWide) {
    if (list.length < 2) continue;
    for (const r of list) out.push(k.noSelector(originOf(r), list.map(fullName), ns));
  }
  const workloads = ctx.input.workloads;
  if (!workloads) return out;
  for (const { workload, selecting } of workloadConflicts(resources, k.selector, workloads))
    for (const r of selecting)
      out.push(k.sameWorkload(originOf(r), selecting.map(fullName), workload.namespace, workload.name));
  if (k.selectsNothing) {
    for (const r of resources) {
      const labels = k.selector(r);
      if (!hasSelector(labels)) continue;
      const picks = workloads.some(
        (w) => w.namespace === r.metadata.namespace && labelsMatch(labels, w.labels),
      );
      if (!picks) out.push(k.selectsNothing(originOf(r), selectorText(labels)));
    }
  }
  return out;
}

export const SIDECAR_SELECTOR = (r: ConfigResource<'Sidecar'>) => r.spec.workloadSelector?.labels;

/**
 * IST0111 MultipleSidecarsWithoutWorkloadSelectors, and with the workloads
 * known IST0110 ConflictingSidecarWorkloadSelectors and IST0101 for a
 * workloadSelector that selects nothing.
 */
export function analyzeSidecarSelectors(ctx: AnalysisContext): AnalysisMessage[] {
  return analyzeKind(ctx, {
    kind: 'Sidecar',
    selector: SIDECAR_SELECTOR,
    sameWorkload: msg.conflictingSidecarWorkloadSelectors,
    noSelector: msg.multipleSidecarsWithoutWorkloadSelectors,
    selectsNothing: (origin, labels) => msg.referencedResourceNotFound(origin, 'selector', labels),
  });
}

/** IST0160 MultipleTelemetriesWithoutWorkloadSelectors and, with the workloads known, IST0159. */
export function analyzeTelemetrySelectors(ctx: AnalysisContext): AnalysisMessage[] {
  return analyzeKind(ctx, {
    kind: 'Telemetry',
    selector: (r) => r.spec.selector?.matchLabels,
    sameWorkload: msg.conflictingTelemetryWorkloadSelectors,
    noSelector: msg.multipleTelemetriesWithoutWorkloadSelectors,
  });
}

/** IST0127 NoMatchingWorkloadsFound: an AuthorizationPolicy whose selector picks no workload in its namespace. */
export function analyzeAuthorizationSelectors(ctx: AnalysisContext): AnalysisMessage[] {
  const workloads = ctx.input.workloads;
  if (!workloads) return [];
  return ctx.of('AuthorizationPolicy').flatMap((ap) => {
    const labels = ap.spec.selector?.matchLabels;
    if (!hasSelector(labels)) return [];
    // A policy in the root namespace applies in every namespace.
    const everywhere = ap.metadata.namespace === (ctx.settings.rootNamespace ?? 'istio-system');
    const picks = workloads.some(
      (w) => (everywhere || w.namespace === ap.metadata.namespace) && labelsMatch(labels, w.labels),
    );
    return picks ? [] : [msg.noMatchingWorkloadsFound(originOf(ap), selectorText(labels))];
  });
}
