import { KINDS, type Kind, type KindInfo, specJsonSchema } from '@mizzen/api';
import { stringify } from 'yaml';

/**
 * deploy/base/crds.yaml, generated: one CustomResourceDefinition per kind
 * libs/api knows, serving every version it accepts, with an OpenAPI v3
 * structural schema converted from libs/api's own zod schema of the spec (so
 * the API server refuses a wrong type or an unknown field the way `mizzen
 * apply` does) and Istio's IstioStatus schema for `status`.
 *
 *   node tools/deploy-check/dist/generate-crds.js          # rewrite the file
 *   node tools/deploy-check/dist/generate-crds.js --check  # exit 1 if it is stale
 */

type Schema = Record<string, unknown>;

interface PrinterColumn {
  name: string;
  type: 'string' | 'date' | 'integer';
  jsonPath: string;
  description?: string;
}

/** What `kubectl get` shows for each kind, as Istio's CRDs have it. */
const COLUMNS: Partial<Record<Kind, PrinterColumn[]>> = {
  VirtualService: [
    {
      name: 'Gateways',
      type: 'string',
      jsonPath: '.spec.gateways',
      description: 'The names of gateways and sidecars that should apply these routes',
    },
    {
      name: 'Hosts',
      type: 'string',
      jsonPath: '.spec.hosts',
      description: 'The destination hosts to which traffic is being sent',
    },
  ],
  DestinationRule: [
    {
      name: 'Host',
      type: 'string',
      jsonPath: '.spec.host',
      description: 'The name of a service from the service registry',
    },
  ],
  ServiceEntry: [
    {
      name: 'Hosts',
      type: 'string',
      jsonPath: '.spec.hosts',
      description: 'The hosts associated with the ServiceEntry',
    },
    {
      name: 'Location',
      type: 'string',
      jsonPath: '.spec.location',
      description:
        'Whether the service is external to the mesh or part of the mesh (MESH_EXTERNAL or MESH_INTERNAL)',
    },
    {
      name: 'Resolution',
      type: 'string',
      jsonPath: '.spec.resolution',
      description: 'Service resolution mode for the hosts (NONE, STATIC, or DNS)',
    },
  ],
  WorkloadEntry: [
    {
      name: 'Address',
      type: 'string',
      jsonPath: '.spec.address',
      description: 'Address associated with the network endpoint',
    },
  ],
  PeerAuthentication: [
    {
      name: 'Mode',
      type: 'string',
      jsonPath: '.spec.mtls.mode',
      description: 'Defines the mTLS mode used for peer authentication',
    },
  ],
  AuthorizationPolicy: [
    { name: 'Action', type: 'string', jsonPath: '.spec.action', description: 'The operation to take' },
  ],
};

const AGE: PrinterColumn = {
  name: 'Age',
  type: 'date',
  jsonPath: '.metadata.creationTimestamp',
  description: 'When the object was created (RFC 3339, UTC)',
};

/** Where a kind's fields are documented. */
const DOCS: Record<Kind, string> = {
  VirtualService:
    'Routing: matches, routes, retries, timeouts, faults, mirroring. See https://istio.io/latest/docs/reference/config/networking/virtual-service/',
  DestinationRule:
    'Policies after routing: subsets, load balancing, connection pools, outlier detection, TLS. See https://istio.io/latest/docs/reference/config/networking/destination-rule/',
  Gateway:
    'A load balancer at the edge of the mesh: ports, protocols, hosts and TLS. See https://istio.io/latest/docs/reference/config/networking/gateway/',
  ServiceEntry:
    'Adds services to the mesh registry. See https://istio.io/latest/docs/reference/config/networking/service-entry/',
  WorkloadEntry:
    'A workload outside Kubernetes (a VM, a process). See https://istio.io/latest/docs/reference/config/networking/workload-entry/',
  Sidecar:
    'What a sidecar listens for and may reach. See https://istio.io/latest/docs/reference/config/networking/sidecar/',
  PeerAuthentication:
    'Mutual TLS between workloads. See https://istio.io/latest/docs/reference/config/security/peer_authentication/',
  AuthorizationPolicy:
    'Access control for workloads. See https://istio.io/latest/docs/reference/config/security/authorization-policy/',
  RequestAuthentication:
    'JWT validation of requests. See https://istio.io/latest/docs/reference/config/security/request_authentication/',
  Telemetry:
    'Metrics, tracing and access logging. See https://istio.io/latest/docs/reference/config/telemetry/',
  RateLimitPolicy:
    "Mizzen's global rate limits: requests per unit for the workloads or gateways it selects. See the README's Rate limiting section",
};

/** An int-or-string node, as Kubernetes spells it. */
const INT_OR_STRING: Schema = {
  anyOf: [{ type: 'integer' }, { type: 'string' }],
  'x-kubernetes-int-or-string': true,
};

/**
 * Istio's `status` (istio.meta.v1alpha1.IstioStatus) as its CRDs declare it,
 * open for fields other controllers add; each validation message also keeps
 * the `description` pilot writes, which a closed schema would prune.
 */
const STATUS: Schema = {
  type: 'object',
  properties: {
    conditions: {
      description: 'Current service state of the resource.',
      type: 'array',
      items: {
        type: 'object',
        properties: {
          lastProbeTime: { type: 'string', format: 'date-time' },
          lastTransitionTime: { type: 'string', format: 'date-time' },
          message: { type: 'string' },
          observedGeneration: INT_OR_STRING,
          reason: { type: 'string' },
          status: { type: 'string' },
          type: { type: 'string' },
        },
      },
    },
    observedGeneration: INT_OR_STRING,
    validationMessages: {
      description: "Errors and warnings found in the resource (pilot's validation, Istio's analysis codes).",
      type: 'array',
      items: {
        type: 'object',
        properties: {
          description: { type: 'string' },
          documentationUrl: { type: 'string' },
          level: { type: 'string', enum: ['UNKNOWN', 'ERROR', 'WARNING', 'INFO'] },
          type: {
            type: 'object',
            properties: { code: { type: 'string' }, name: { type: 'string' } },
          },
        },
      },
    },
  },
  'x-kubernetes-preserve-unknown-fields': true,
};

/** JSON Schema keywords the conversion keeps as they are (all valid in a CRD's JSONSchemaProps). */
const KEPT = new Set([
  'description',
  'type',
  'format',
  'enum',
  'minimum',
  'maximum',
  'minLength',
  'maxLength',
  'minItems',
  'maxItems',
  'pattern',
]);

/**
 * Converts libs/api's JSON Schema of a spec to Kubernetes' structural schema
 * rules: no `$schema`; `additionalProperties: false` dropped (a structural
 * schema prunes unknown fields, and `kubectl apply`'s strict field validation
 * refuses them) while a map's `additionalProperties` schema stays;
 * `propertyNames` (not in JSONSchemaProps) dropped — every key libs/api allows
 * is a string anyway. Anything else (`$ref`, `anyOf`, `const`, …) cannot come
 * out of a zod object schema libs/api writes today and is refused with its path,
 * so a new construct is noticed here rather than in the API server.
 */
export function toStructural(schema: Schema, at = 'spec'): Schema {
  const out: Schema = {};
  for (const [key, value] of Object.entries(schema)) {
    if (KEPT.has(key)) out[key] = value;
    else if (key === '$schema' || key === 'propertyNames') continue;
    else if (key === 'additionalProperties') {
      if (value === false) continue;
      if (typeof value !== 'object' || value === null)
        throw new Error(`${at}: additionalProperties ${JSON.stringify(value)} has no structural form`);
      out.additionalProperties = toStructural(value as Schema, `${at}{}`);
    } else if (key === 'properties') {
      out.properties = Object.fromEntries(
        Object.entries(value as Record<string, Schema>).map(([name, s]) => [
          name,
          toStructural(s, `${at}.${name}`),
        ]),
      );
    } else if (key === 'items') {
      out.items = toStructural(value as Schema, `${at}[]`);
    } else if (key === 'required') {
      if ((value as string[]).length > 0) out.required = value;
    } else throw new Error(`${at}: JSON Schema keyword "${key}" has no structural form in a CRD`);
  }
  if (typeof out.type !== 'string') throw new Error(`${at}: no type`);
  return ordered(out);
}

/** Keys in a fixed, readable order: description and type first, then constraints, then children. */
function ordered(s: Schema): Schema {
  const order = [
    'description',
    'type',
    'format',
    'enum',
    'minimum',
    'maximum',
    'minLength',
    'maxLength',
    'pattern',
    'minItems',
    'maxItems',
    'properties',
    'additionalProperties',
    'items',
    'required',
    'anyOf',
  ];
  const out: Schema = {};
  for (const k of order) if (k in s) out[k] = s[k];
  for (const k of Object.keys(s).sort()) if (!(k in out)) out[k] = s[k];
  return out;
}

/** The openAPIV3Schema of one kind (the same for every served version: conversion None). */
export function openApiSchema(kind: Kind): Schema {
  return {
    description: DOCS[kind],
    type: 'object',
    properties: {
      spec: toStructural(specJsonSchema(kind)),
      status: STATUS,
    },
  };
}

function categories(info: KindInfo): string[] {
  if (info.group === 'policy.mizzen.io') return ['mizzen-io'];
  return ['istio-io', `${info.group.split('.')[0]}-istio-io`];
}

/** The CustomResourceDefinition of one kind. */
export function crdFor(info: KindInfo): Schema {
  const istio = info.group.endsWith('istio.io');
  const schema = openApiSchema(info.kind);
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${info.plural}.${info.group}`,
      labels: {
        'app.kubernetes.io/part-of': 'mizzen',
        ...(istio ? { istio: info.group.split('.')[0] } : {}),
      },
    },
    spec: {
      group: info.group,
      names: {
        kind: info.kind,
        listKind: `${info.kind}List`,
        plural: info.plural,
        singular: info.kind.toLowerCase(),
        ...(info.shortNames.length ? { shortNames: [...info.shortNames] } : {}),
        categories: categories(info),
      },
      scope: 'Namespaced',
      versions: info.versions.map((name, i) => ({
        name,
        served: true,
        // Pilot watches the newest version, which is also the one stored.
        storage: i === 0,
        subresources: { status: {} },
        additionalPrinterColumns: [...(COLUMNS[info.kind] ?? []), AGE],
        schema: { openAPIV3Schema: schema },
      })),
    },
  };
}

/** Every CRD, in libs/api's order of kinds. */
export function crds(): Schema[] {
  return Object.values(KINDS).map(crdFor);
}

const HEADER = `# GENERATED by tools/deploy-check (src/crds.ts) from libs/api's schemas: do not
# edit. Regenerate with:
#   npx nx run @mizzen/deploy-check:build && node tools/deploy-check/dist/generate-crds.js
# One CustomResourceDefinition per kind Mizzen reads, served at every version
# Istio serves (one schema, conversion None), stored at the newest. The spec
# schemas are structural: the API server refuses wrong types and (with
# kubectl's strict field validation) unknown fields; pilot's validating
# webhook adds the rules a schema cannot express, with mizzen apply's messages.
`;

/** The text of deploy/base/crds.yaml. */
export function crdsYaml(): string {
  const docs = crds().map((crd) => `---\n${stringify(crd, { lineWidth: 0, aliasDuplicateObjects: false })}`);
  return `${HEADER}${docs.join('')}`;
}
