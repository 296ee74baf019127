import fs from 'node:fs';
import path from 'node:path';
import { KINDS } from '@mizzen/api';
import { describe, expect, it } from 'vitest';
import {
  crdsYaml,
  crdValidator,
  type K8sObject,
  parseObjects,
  preservedPaths,
  REPO_ROOT,
  structuralProblems,
  toStructural,
  validateObject,
} from '../src/index.js';

const CRDS_FILE = path.join(REPO_ROOT, 'deploy', 'base', 'crds.yaml');
const committed = parseObjects(fs.readFileSync(CRDS_FILE, 'utf8'));
const validate = crdValidator(committed);

type Schema = Record<string, unknown>;
const versionsOf = (crd: K8sObject) =>
  (crd.spec as { versions: { name: string; schema: { openAPIV3Schema: Schema } }[] }).versions;

/** Every YAML file under a directory of deploy/, recursively. */
function yamlFiles(dir: string): string[] {
  return fs
    .readdirSync(path.join(REPO_ROOT, dir), { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && /\.ya?ml$/.test(e.name) && e.name !== 'kustomization.yaml')
    .map((e) => path.relative(REPO_ROOT, path.join(e.parentPath, e.name)))
    .sort();
}

const GROUPS = new Set<string>(Object.values(KINDS).map((k) => k.group));
const customResources = (file: string) =>
  parseObjects(fs.readFileSync(path.join(REPO_ROOT, file), 'utf8')).filter((o) =>
    GROUPS.has(o.apiVersion.split('/')[0]!),
  );

describe("CRDs generated from libs/api's schemas (deploy/base/crds.yaml)", () => {
  it('are exactly what the generator writes (regenerate: node tools/deploy-check/dist/generate-crds.js)', () => {
    expect(fs.readFileSync(CRDS_FILE, 'utf8')).toBe(crdsYaml());
  });

  it('cover every kind libs/api knows, Telemetry and the policy.mizzen.io RateLimitPolicy included', () => {
    expect(committed.map((c) => c.metadata.name).sort()).toEqual(
      Object.values(KINDS)
        .map((k) => `${k.plural}.${k.group}`)
        .sort(),
    );
    expect(committed.map((c) => c.metadata.name)).toEqual(
      expect.arrayContaining(['telemetries.telemetry.istio.io', 'ratelimitpolicies.policy.mizzen.io']),
    );
  });

  it('follow the structural schema rules, with unknown fields kept only in status, as in Istio’s CRDs', () => {
    const problems: string[] = [];
    for (const crd of committed) {
      for (const v of versionsOf(crd)) {
        const schema = v.schema.openAPIV3Schema;
        problems.push(
          ...structuralProblems(schema, ['status']).map((p) => `${crd.metadata.name} ${v.name}: ${p}`),
        );
        expect(preservedPaths(schema), crd.metadata.name).toEqual(['status']);
        // A real schema, not an open object: the spec lists its fields.
        const spec = (schema.properties as Record<string, Schema>).spec!;
        expect(spec.type).toBe('object');
        expect(Object.keys(spec.properties as Schema).length, crd.metadata.name).toBeGreaterThan(0);
      }
    }
    expect(problems).toEqual([]);
  });

  it('use int-or-string where Istio does (status.observedGeneration) and integers with bounds for ports and weights', () => {
    const vs = versionsOf(
      committed.find((c) => c.metadata.name === 'virtualservices.networking.istio.io')!,
    )[0]!.schema.openAPIV3Schema as Schema;
    const status = (vs.properties as Record<string, Schema>).status!;
    expect((status.properties as Record<string, Schema>).observedGeneration).toEqual({
      anyOf: [{ type: 'integer' }, { type: 'string' }],
      'x-kubernetes-int-or-string': true,
    });
    const text = JSON.stringify(vs);
    expect(text).toContain('"weight":{"type":"integer","minimum":0,"maximum":100}');
    expect(text).toContain('"number":{"type":"integer","minimum":1,"maximum":65535}');
  });

  it('the rule checker itself finds what Kubernetes refuses', () => {
    expect(
      structuralProblems(
        {
          type: 'object',
          properties: {
            a: { $ref: '#/x' },
            b: { type: 'object', properties: { c: { type: 'string' } }, additionalProperties: false },
            d: { oneOf: [{ type: 'string' }, { type: 'integer' }] },
            e: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
            f: { type: 'array' },
            g: { type: 'string', propertyNames: { type: 'string' } },
          },
        },
        [],
      ),
    ).toEqual([
      'a: "$ref" is not allowed in a CRD schema',
      'a: no type (structural rule 1)',
      'b: properties and additionalProperties are mutually exclusive',
      'b: additionalProperties cannot be false (unknown fields are pruned)',
      'd: oneOf is only used for int-or-string here (structural rule 3)',
      'd: no type (structural rule 1)',
      "e: x-kubernetes-preserve-unknown-fields where Istio's CRDs have a closed schema",
      'f: an array needs one items schema',
      'g: "propertyNames" is not a JSONSchemaProps field',
    ]);
    expect(() => toStructural({ type: 'object', properties: { x: { anyOf: [] } } })).toThrow(
      'spec.x: JSON Schema keyword "anyOf" has no structural form in a CRD',
    );
  });

  it("accept every Istio and Mizzen resource in deploy/samples and deploy/local, as Istio's own CRD schemas do", async () => {
    const files = [...yamlFiles('deploy/samples'), ...yamlFiles('deploy/local')];
    const problems: string[] = [];
    let checked = 0;
    for (const file of files) {
      for (const o of customResources(file)) {
        problems.push(...validate(o).map((p) => `${file}: ${p}`));
        // For comparison, Istio's published schemas (@kubernetes-models/istio) accept the same documents.
        if (o.apiVersion.includes('istio.io'))
          problems.push(...(await validateObject(o)).map((p) => `${file}: ${p}`));
        checked++;
      }
    }
    expect(problems).toEqual([]);
    expect(files).toEqual(expect.arrayContaining(['deploy/local/bookinfo-services.yaml']));
    expect(checked).toBeGreaterThan(10);
  });

  it('refuse wrong types, out-of-range numbers, unknown enum values and unknown fields, naming the path', () => {
    const vs: K8sObject = {
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'reviews', namespace: 'bookinfo' },
      spec: {
        hosts: ['reviews'],
        http: [
          { route: [{ destination: { host: 'reviews', port: { number: 'nine' } }, weight: 120 }], retry: {} },
        ],
      },
    };
    expect(validate(vs)).toEqual([
      'VirtualService bookinfo/reviews: spec.http[0]: must NOT have additional properties "retry"',
      'VirtualService bookinfo/reviews: spec.http[0].route[0].destination.port.number: must be integer',
      'VirtualService bookinfo/reviews: spec.http[0].route[0].weight: must be <= 100',
    ]);
    const pa: K8sObject = {
      apiVersion: 'security.istio.io/v1beta1',
      kind: 'PeerAuthentication',
      metadata: { name: 'default', namespace: 'istio-system' },
      spec: { mtls: { mode: 'SOMETIMES' } },
    };
    expect(validate(pa)).toEqual([
      'PeerAuthentication istio-system/default: spec.mtls.mode: must be equal to one of the allowed values',
    ]);
    expect(validate({ ...pa, apiVersion: 'security.istio.io/v2' })).toEqual([
      'PeerAuthentication istio-system/default: no CRD serves security.istio.io/v2 PeerAuthentication',
    ]);
    // Status is open, as Istio's: what other controllers write stays.
    expect(
      validate({ ...pa, spec: {}, status: { validationMessages: [], conditions: [], other: 1 } }),
    ).toEqual([]);
  });
});
