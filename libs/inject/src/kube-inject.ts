import { parseAllDocuments, stringify } from 'yaml';
import { type InjectionConfig, injectPod, type PodLike } from './inject.js';

/** Where each workload kind keeps its pod template. */
const TEMPLATE_PATHS: Record<string, readonly string[]> = {
  Deployment: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  Job: ['spec', 'template'],
  ReplicationController: ['spec', 'template'],
  DeploymentConfig: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

export class KubeInjectError extends Error {}

type Doc = Record<string, unknown>;

const API_GROUP_FOR: Record<string, string> = {
  Deployment: 'apps/v1',
  ReplicaSet: 'apps/v1',
  StatefulSet: 'apps/v1',
  DaemonSet: 'apps/v1',
  Job: 'batch/v1',
  CronJob: 'batch/v1',
};

function injectObject(obj: Doc, config: InjectionConfig): Doc {
  const kind = obj.kind;
  if (kind === 'List' && Array.isArray(obj.items)) {
    return { ...obj, items: (obj.items as Doc[]).map((i) => injectObject(i, config)) };
  }
  const meta = (obj.metadata ?? {}) as { name?: string; namespace?: string };
  const namespace = meta.namespace ?? 'default';
  if (kind === 'Pod') {
    return injectPod(obj as PodLike, config, { namespace }).pod as Doc;
  }
  const path = typeof kind === 'string' ? TEMPLATE_PATHS[kind] : undefined;
  if (!path) return obj;
  const out = structuredClone(obj);
  let parent = out as Doc;
  for (const p of path.slice(0, -1)) {
    const next = parent[p];
    if (!next || typeof next !== 'object') return obj;
    parent = next as Doc;
  }
  const key = path[path.length - 1]!;
  const template = parent[key] as PodLike | undefined;
  if (!template) return obj;
  const group = API_GROUP_FOR[kind as string] ?? String(obj.apiVersion ?? 'v1');
  const result = injectPod(template, config, {
    namespace,
    workloadName: meta.name,
    owner: `kubernetes://apis/${group}/namespaces/${namespace}/${String(kind).toLowerCase()}s/${meta.name}`,
  });
  parent[key] = result.pod;
  return out;
}

/**
 * `istioctl kube-inject`: injects every workload in a YAML stream (Pods,
 * Deployments, StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs,
 * ReplicationControllers, Lists of them) and passes everything else through,
 * one YAML document per input document. The namespace's labels are not known
 * offline, so only the pod's own opt-out applies.
 */
export function kubeInject(text: string, config: InjectionConfig, source = 'input'): string {
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) return '';
  const out: string[] = [];
  for (const [i, doc] of docs.entries()) {
    if (doc.errors.length > 0) {
      throw new KubeInjectError(`${source}: document ${i + 1}: ${doc.errors[0]!.message.split('\n')[0]}`);
    }
    const value = doc.toJS() as unknown;
    if (value === null || value === undefined) continue;
    if (typeof value !== 'object' || Array.isArray(value)) {
      throw new KubeInjectError(`${source}: document ${i + 1} is not a Kubernetes object`);
    }
    out.push(stringify(injectObject(value as Doc, config), { lineWidth: 0 }));
  }
  return out.join('---\n');
}
