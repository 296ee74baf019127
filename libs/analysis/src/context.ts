import type { ConfigResource, Kind } from '@mizzen/api';
import { byCreation } from './ordering.js';

export interface AnalysisSettings {
  domainSuffix: string;
  /** The mesh's root namespace (istio-system): its policies apply everywhere. */
  rootNamespace?: string;
  /** The mesh's exportTo for resources that set none (defaultVirtualServiceExportTo…). */
  defaultVirtualServiceExportTo?: readonly string[];
  defaultDestinationRuleExportTo?: readonly string[];
}

/** A service the config does not describe itself: a Kubernetes Service, or one in pilot's live registry. */
export interface KnownService {
  hostname: string;
  namespace: string;
}

/** A workload (pod, WorkloadEntry, connected proxy) that selectors may pick. */
export interface Workload {
  name: string;
  namespace: string;
  labels: Record<string, string>;
}

/**
 * What the analyzers look at. Checks that need facts beyond the Istio config
 * run only when those facts are given: destination hosts against `services`,
 * selectors against `workloads`, gateway certificates against `credentials`.
 */
export interface AnalysisInput {
  resources: readonly ConfigResource[];
  settings: AnalysisSettings;
  services?: readonly KnownService[];
  workloads?: readonly Workload[];
  /** `namespace/name` of every gateway credential (TLS Secret) that exists. */
  credentials?: ReadonlySet<string>;
}

/** The input with its resources by kind, oldest first, computed once for every analyzer. */
export class AnalysisContext {
  private readonly byKind = new Map<string, ConfigResource[]>();

  constructor(readonly input: AnalysisInput) {
    for (const r of [...input.resources].sort(byCreation)) {
      const list = this.byKind.get(r.kind) ?? [];
      list.push(r);
      this.byKind.set(r.kind, list);
    }
  }

  get settings(): AnalysisSettings {
    return this.input.settings;
  }

  of<K extends Kind>(kind: K): readonly ConfigResource<K>[] {
    return (this.byKind.get(kind) ?? []) as ConfigResource<K>[];
  }

  find<K extends Kind>(kind: K, namespace: string, name: string): ConfigResource<K> | undefined {
    return this.of(kind).find((r) => r.metadata.namespace === namespace && r.metadata.name === name);
  }
}
