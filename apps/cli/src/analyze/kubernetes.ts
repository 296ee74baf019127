import type { KnownService, Workload } from '@mizzen/analysis';

/** What Kubernetes objects in the analyzed files tell the analyzers: services, workloads, TLS credentials. */
export interface KubernetesFacts {
  services: KnownService[];
  workloads: Workload[];
  /** `namespace/name` of each Secret. */
  credentials: string[];
}

const WORKLOAD_KINDS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Job']);

type Obj = {
  apiVersion?: unknown;
  kind?: unknown;
  metadata?: { name?: unknown; namespace?: unknown; labels?: unknown };
  spec?: { template?: { metadata?: { labels?: unknown } } };
};

function labels(value: unknown): Record<string, string> {
  if (typeof value !== 'object' || value === null) return {};
  return Object.fromEntries(Object.entries(value).filter(([, v]) => typeof v === 'string')) as Record<
    string,
    string
  >;
}

/** Is this a Kubernetes core or apps object (not Istio config)? */
export function isKubernetesObject(doc: unknown): boolean {
  const o = doc as Obj;
  return (
    typeof o?.apiVersion === 'string' &&
    !o.apiVersion.includes('istio.io') &&
    !o.apiVersion.includes('mizzen.io')
  );
}

/**
 * Services, Pods (and the pod templates of workload controllers) and Secrets
 * among Kubernetes objects, as `istioctl analyze -f` reads them from files.
 */
export function kubernetesFacts(docs: readonly unknown[], domainSuffix: string): KubernetesFacts {
  const facts: KubernetesFacts = { services: [], workloads: [], credentials: [] };
  for (const doc of docs) {
    const o = doc as Obj;
    const name = o?.metadata?.name;
    if (!isKubernetesObject(doc) || typeof name !== 'string') continue;
    const namespace = typeof o.metadata?.namespace === 'string' ? o.metadata.namespace : 'default';
    if (o.kind === 'Service')
      facts.services.push({ hostname: `${name}.${namespace}.svc.${domainSuffix}`, namespace });
    else if (o.kind === 'Secret') facts.credentials.push(`${namespace}/${name}`);
    else if (o.kind === 'Pod') facts.workloads.push({ name, namespace, labels: labels(o.metadata?.labels) });
    else if (typeof o.kind === 'string' && WORKLOAD_KINDS.has(o.kind))
      facts.workloads.push({ name, namespace, labels: labels(o.spec?.template?.metadata?.labels) });
  }
  return facts;
}
