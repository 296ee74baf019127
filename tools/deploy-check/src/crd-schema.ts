import { Ajv } from 'ajv';
import type { K8sObject } from './render.js';

type Schema = Record<string, unknown>;

/** The fields of apiextensions.k8s.io/v1 JSONSchemaProps a CRD may use (the rest are refused or ignored by the API server). */
const JSON_SCHEMA_PROPS = new Set([
  'description',
  'type',
  'format',
  'title',
  'default',
  'maximum',
  'exclusiveMaximum',
  'minimum',
  'exclusiveMinimum',
  'maxLength',
  'minLength',
  'pattern',
  'maxItems',
  'minItems',
  'uniqueItems',
  'multipleOf',
  'enum',
  'maxProperties',
  'minProperties',
  'required',
  'items',
  'allOf',
  'oneOf',
  'anyOf',
  'not',
  'properties',
  'additionalProperties',
  'nullable',
  'example',
  'externalDocs',
  'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-embedded-resource',
  'x-kubernetes-int-or-string',
  'x-kubernetes-list-map-keys',
  'x-kubernetes-list-type',
  'x-kubernetes-map-type',
  'x-kubernetes-validations',
]);

/** Keywords JSONSchemaProps has but a v1 CRD must not use. */
const FORBIDDEN = [
  '$ref',
  '$schema',
  'id',
  'definitions',
  'patternProperties',
  'dependencies',
  'additionalItems',
];

const TYPES = new Set(['object', 'array', 'string', 'integer', 'number', 'boolean']);

function isIntOrString(s: Schema): boolean {
  return s['x-kubernetes-int-or-string'] === true;
}

/** `anyOf: [{type: integer}, {type: string}]`: the one logical junctor this project's CRDs use, for int-or-string. */
function intOrStringJunctor(s: Schema): boolean {
  const anyOf = s.anyOf as Schema[] | undefined;
  if (!Array.isArray(anyOf) || anyOf.length !== 2) return false;
  const types = anyOf.map((a) => (Object.keys(a).length === 1 ? a.type : undefined)).sort();
  return types[0] === 'integer' && types[1] === 'string';
}

/**
 * The rules of Kubernetes' structural schemas (and of apiextensions/v1) a
 * schema breaks, each with its path: a non-empty type on every node (except
 * int-or-string and preserve-unknown-fields nodes), no `$ref` or other
 * forbidden keywords, logical junctors only in the int-or-string pattern,
 * `properties` and `additionalProperties` not together and never `false`, one
 * `items` schema per array, nothing about `metadata` but name, and
 * `x-kubernetes-preserve-unknown-fields` only where `allowUnknownAt` says.
 */
export function structuralProblems(schema: Schema, allowUnknownAt: readonly string[], at = ''): string[] {
  const here = at || '<root>';
  const problems: string[] = [];
  for (const key of Object.keys(schema)) {
    if (FORBIDDEN.includes(key)) problems.push(`${here}: "${key}" is not allowed in a CRD schema`);
    else if (!JSON_SCHEMA_PROPS.has(key)) problems.push(`${here}: "${key}" is not a JSONSchemaProps field`);
  }
  const preserve = schema['x-kubernetes-preserve-unknown-fields'] === true;
  if (preserve && !allowUnknownAt.includes(at))
    problems.push(`${here}: x-kubernetes-preserve-unknown-fields where Istio's CRDs have a closed schema`);
  if (isIntOrString(schema)) {
    if (schema.type !== undefined) problems.push(`${here}: an int-or-string node must not set type`);
    if (!intOrStringJunctor(schema))
      problems.push(`${here}: int-or-string needs anyOf [{type: integer}, {type: string}]`);
    if (preserve) problems.push(`${here}: int-or-string and preserve-unknown-fields do not go together`);
    return problems;
  }
  for (const junctor of ['allOf', 'anyOf', 'oneOf', 'not'])
    if (schema[junctor] !== undefined)
      problems.push(`${here}: ${junctor} is only used for int-or-string here (structural rule 3)`);
  const type = schema.type;
  if (type === undefined && !preserve) problems.push(`${here}: no type (structural rule 1)`);
  else if (type !== undefined && (typeof type !== 'string' || !TYPES.has(type)))
    problems.push(`${here}: type ${JSON.stringify(type)} is not one of ${[...TYPES].join(', ')}`);
  if (at === '' && type !== 'object') problems.push('<root>: the root must be type object');
  if (schema.properties !== undefined && schema.additionalProperties !== undefined)
    problems.push(`${here}: properties and additionalProperties are mutually exclusive`);
  if (schema.additionalProperties === false)
    problems.push(`${here}: additionalProperties cannot be false (unknown fields are pruned)`);
  if (schema.uniqueItems === true) problems.push(`${here}: uniqueItems cannot be true`);
  if ((schema.properties || schema.additionalProperties) && type !== 'object')
    problems.push(`${here}: properties on a non-object`);
  if (type === 'array') {
    if (!schema.items || Array.isArray(schema.items) || typeof schema.items !== 'object')
      problems.push(`${here}: an array needs one items schema`);
  } else if (schema.items !== undefined) problems.push(`${here}: items on a non-array`);
  const properties = (schema.properties ?? {}) as Record<string, Schema>;
  if (at === '' && properties.metadata) {
    const meta = Object.keys((properties.metadata.properties ?? {}) as Schema);
    if (meta.some((m) => m !== 'name' && m !== 'generateName'))
      problems.push('metadata: only name and generateName may be restricted');
  }
  for (const [name, child] of Object.entries(properties))
    problems.push(...structuralProblems(child, allowUnknownAt, at ? `${at}.${name}` : name));
  if (schema.additionalProperties && typeof schema.additionalProperties === 'object')
    problems.push(...structuralProblems(schema.additionalProperties as Schema, allowUnknownAt, `${at}{}`));
  if (schema.items && typeof schema.items === 'object' && !Array.isArray(schema.items))
    problems.push(...structuralProblems(schema.items as Schema, allowUnknownAt, `${at}[]`));
  return problems;
}

/** Every path (`status`, `spec.x[]`) that keeps unknown fields. */
export function preservedPaths(schema: Schema, at = ''): string[] {
  const out = schema['x-kubernetes-preserve-unknown-fields'] === true ? [at] : [];
  for (const [name, child] of Object.entries((schema.properties ?? {}) as Record<string, Schema>))
    out.push(...preservedPaths(child, at ? `${at}.${name}` : name));
  if (schema.additionalProperties && typeof schema.additionalProperties === 'object')
    out.push(...preservedPaths(schema.additionalProperties as Schema, `${at}{}`));
  if (schema.items && typeof schema.items === 'object')
    out.push(...preservedPaths(schema.items as Schema, `${at}[]`));
  return out;
}

/**
 * The structural schema as plain JSON Schema with what the API server does on
 * `kubectl apply` (strict field validation): an object that lists its
 * properties and keeps no unknown fields refuses others; int-or-string is its
 * anyOf; formats are not checked (the API server ignores most of them too).
 */
function asJsonSchema(schema: Schema): Schema {
  const out: Schema = {};
  for (const [key, value] of Object.entries(schema)) {
    if (key.startsWith('x-kubernetes-') || key === 'format' || key === 'description') continue;
    if (key === 'properties')
      out.properties = Object.fromEntries(
        Object.entries(value as Record<string, Schema>).map(([k, v]) => [k, asJsonSchema(v)]),
      );
    else if (key === 'items' || key === 'additionalProperties' || key === 'not')
      out[key] = asJsonSchema(value as Schema);
    else if (key === 'anyOf' || key === 'oneOf' || key === 'allOf')
      out[key] = (value as Schema[]).map(asJsonSchema);
    else out[key] = value;
  }
  if (schema.properties && schema['x-kubernetes-preserve-unknown-fields'] !== true)
    out.additionalProperties = false;
  return out;
}

interface CrdSpec {
  group: string;
  names: { kind: string };
  versions: { name: string; schema: { openAPIV3Schema: Schema } }[];
}

/** What an object breaks in its CRD's schema, as the API server would refuse it: `<path>: <reason>` per problem. */
export type CrdValidator = (o: K8sObject) => string[];

/**
 * Validators for custom resources from CRD objects (ajv over each version's
 * openAPIV3Schema, the object's `apiVersion` picking the version); a kind or
 * version no CRD serves is itself a problem.
 */
export function crdValidator(crdObjects: readonly K8sObject[]): CrdValidator {
  const ajv = new Ajv({ allErrors: true, strict: false });
  const compiled = new Map<string, ReturnType<Ajv['compile']>>();
  for (const crd of crdObjects) {
    const spec = crd.spec as CrdSpec;
    for (const v of spec.versions) {
      const { properties, ...root } = v.schema.openAPIV3Schema;
      // apiVersion, kind and metadata are the API server's, checked before the schema.
      const schema = asJsonSchema({
        ...root,
        properties: {
          ...(properties as Schema),
          apiVersion: { type: 'string' },
          kind: { type: 'string' },
          metadata: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
        },
      });
      compiled.set(`${spec.group}/${v.name} ${spec.names.kind}`, ajv.compile(schema));
    }
  }
  return (o) => {
    const where = `${o.kind} ${o.metadata?.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata?.name}`;
    const validate = compiled.get(`${o.apiVersion} ${o.kind}`);
    if (!validate) return [`${where}: no CRD serves ${o.apiVersion} ${o.kind}`];
    if (validate(o)) return [];
    return (validate.errors ?? []).map((e) => {
      const path = e.instancePath
        .replace(/^\//, '')
        .replace(/\/(\d+)(?=\/|$)/g, '[$1]')
        .replaceAll('/', '.');
      const extra = e.keyword === 'additionalProperties' ? ` "${String(e.params.additionalProperty)}"` : '';
      return `${where}: ${path || '<root>'}: ${e.message}${extra}`;
    });
  };
}
