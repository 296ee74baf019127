import { z } from 'zod';
import { VALIDATION } from '../kinds/index.js';
import {
  apiVersionsFor,
  type ConfigResource,
  isKind,
  KIND_NAMES,
  KINDS,
  type Kind,
  type ObjectMeta,
  resolveKind,
} from '../resource.js';
import { Checker, type RawIssue } from './checker.js';
import { namespaceName, resourceName } from './names.js';
import { annotations, int, labels, obj, rules, str, strings } from './schema.js';
import { checkSchema, typeName } from './zod-issues.js';

/** The outcome of checking one resource document. */
export interface ResourceCheck {
  /** Present only when there is no error (warnings allowed). */
  resource?: ConfigResource;
  issues: RawIssue[];
  /** As much of the identity as could be read, to name the resource in messages. */
  kind?: string;
  namespace?: string;
  name?: string;
}

const TOP_LEVEL = ['apiVersion', 'kind', 'metadata', 'spec', 'status'];

const metadataSchema = obj({
  name: rules(str(), resourceName),
  namespace: rules(str(), namespaceName).optional(),
  labels: labels().optional(),
  annotations: annotations().optional(),
  creationTimestamp: rules(str(), (s) =>
    Number.isNaN(Date.parse(s)) ? `"${s}" is not an RFC 3339 timestamp` : undefined,
  ).optional(),
  resourceVersion: str().optional(),
  generation: int(0).optional(),
  // Written by the Kubernetes API server; accepted so `kubectl get -o yaml` output applies, and dropped.
  uid: str().optional(),
  generateName: str().optional(),
  selfLink: str().optional(),
  finalizers: strings().optional(),
  ownerReferences: z.array(z.record(z.string(), z.unknown())).optional(),
  managedFields: z.array(z.unknown()).optional(),
  deletionTimestamp: str().optional(),
  deletionGracePeriodSeconds: int(0).optional(),
});

function isMapping(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Checks one resource as Istio's validating webhook would: envelope
 * (apiVersion, kind), metadata, the spec's structure, then the kind's
 * semantic rules. Fills Kubernetes' defaults (namespace `default`) and
 * otherwise returns the spec exactly as written.
 */
export function checkResource(raw: unknown): ResourceCheck {
  const issues: RawIssue[] = [];
  const at = new Checker(issues);
  if (!isMapping(raw)) {
    at.error(
      `expected a resource (a mapping with apiVersion, kind, metadata and spec), got ${typeName(raw)}`,
    );
    return { issues };
  }
  const meta = isMapping(raw.metadata) ? raw.metadata : {};
  const identity = {
    kind: typeof raw.kind === 'string' ? raw.kind : undefined,
    name: typeof meta.name === 'string' ? meta.name : undefined,
    namespace: typeof meta.namespace === 'string' ? meta.namespace : 'default',
  };

  for (const key of Object.keys(raw)) {
    if (!TOP_LEVEL.includes(key))
      at.at(key).error(`unknown field "${key}" (a resource has apiVersion, kind, metadata and spec)`);
  }

  const kind = checkKind(raw.kind, at.at('kind'));
  if (kind) checkApiVersion(raw.apiVersion, kind, at.at('apiVersion'));

  if (raw.metadata === undefined || raw.metadata === null)
    at.at('metadata').error('required field "metadata" is missing (it needs at least a name)');
  else issues.push(...checkSchema(metadataSchema, raw.metadata, ['metadata']));

  if (!kind) return { issues, ...identity };
  const validation = VALIDATION[kind] as (typeof VALIDATION)[Kind];
  const ctx = { namespace: identity.namespace, name: identity.name ?? '' };
  if (identity.name !== undefined && validation.checkMetadata && !at.at('metadata').hasErrors()) {
    validation.checkMetadata({ name: identity.name, namespace: identity.namespace }, at.at('metadata'));
  }

  const spec = raw.spec === undefined || raw.spec === null ? {} : raw.spec;
  const specIssues = checkSchema(validation.schema, spec, ['spec']);
  issues.push(...specIssues);
  if (!specIssues.some((i) => i.severity === 'error')) {
    (validation.check as (s: unknown, a: Checker, c: typeof ctx) => void)(spec, at.at('spec'), ctx);
  }

  if (issues.some((i) => i.severity === 'error')) return { issues, ...identity };
  const resource = {
    apiVersion: raw.apiVersion as string,
    kind,
    metadata: cleanMetadata(meta, identity.namespace),
    spec,
  } as ConfigResource;
  return { resource, issues, ...identity };
}

function checkKind(value: unknown, at: Checker): Kind | undefined {
  if (value === undefined) {
    at.error(`required field "kind" is missing; use one of ${KIND_NAMES.join(', ')}`);
    return undefined;
  }
  if (typeof value !== 'string') {
    at.error(`expected a string, got ${typeName(value)}`);
    return undefined;
  }
  if (isKind(value)) return value;
  const guess = resolveKind(value);
  at.error(
    guess
      ? `unknown kind "${value}" (did you mean "${guess}"?)`
      : `unknown kind "${value}"; Mizzen understands ${KIND_NAMES.join(', ')}`,
  );
  return undefined;
}

function checkApiVersion(value: unknown, kind: Kind, at: Checker): void {
  const accepted = apiVersionsFor(kind);
  if (value === undefined) {
    at.error(`required field "apiVersion" is missing; use ${accepted[0]}`);
    return;
  }
  if (typeof value !== 'string') {
    at.error(`expected a string, got ${typeName(value)}`);
    return;
  }
  if (accepted.includes(value)) return;
  const group = KINDS[kind].group;
  const reason = value.startsWith(`${group}/`)
    ? `${value} is not a served version of ${kind}`
    : `${kind} belongs to ${group}`;
  at.error(`${reason}; use one of ${accepted.join(', ')}`);
}

function cleanMetadata(meta: Record<string, unknown>, namespace: string): ObjectMeta {
  const out: ObjectMeta = { name: meta.name as string, namespace };
  if (meta.labels !== undefined) out.labels = meta.labels as Record<string, string>;
  if (meta.annotations !== undefined) out.annotations = meta.annotations as Record<string, string>;
  if (meta.creationTimestamp !== undefined) out.creationTimestamp = meta.creationTimestamp as string;
  if (meta.resourceVersion !== undefined) out.resourceVersion = meta.resourceVersion as string;
  if (meta.generation !== undefined) out.generation = meta.generation as number;
  return out;
}
