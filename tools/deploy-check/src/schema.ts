import type { K8sObject } from './render.js';

interface Model {
  validate(): void;
}
type ModelClass = new (data: unknown) => Model;

/** Which package holds the generated models (JSON schemas from the OpenAPI specs) for an API group. */
function modulePath(apiVersion: string): string {
  const slash = apiVersion.indexOf('/');
  const group = slash < 0 ? '' : apiVersion.slice(0, slash);
  if (group.endsWith('istio.io')) return `@kubernetes-models/istio/${apiVersion}`;
  if (group.endsWith('cert-manager.io')) return `@kubernetes-models/cert-manager/${apiVersion}`;
  return `kubernetes-models/${apiVersion}`;
}

/**
 * Validates an object against its kind's schema: kubernetes-models for the
 * core API (Kubernetes' own OpenAPI schemas), @kubernetes-models/istio for
 * Istio kinds (Istio's CRD schemas) and @kubernetes-models/cert-manager for
 * cert-manager kinds. Returns the problems, or a problem when no schema knows
 * the kind — an object nothing can check does not pass.
 */
export async function validateObject(o: K8sObject): Promise<string[]> {
  const where = `${o.kind} ${o.metadata?.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata?.name}`;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(modulePath(o.apiVersion))) as Record<string, unknown>;
  } catch {
    return [`${where}: no schema for apiVersion ${o.apiVersion}`];
  }
  const cls = mod[o.kind] as ModelClass | undefined;
  if (typeof cls !== 'function') return [`${where}: no schema for ${o.apiVersion} ${o.kind}`];
  try {
    new cls(o).validate();
    return [];
  } catch (err) {
    return [`${where}: ${(err as Error).message}`];
  }
}
