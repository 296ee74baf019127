import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type PilotProcess, startPilot } from './pilot-process.js';

const SERVICES = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, labels: { version: v1 } }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: default }
spec:
  host: reviews
  subsets: [{ name: v1, labels: { version: v1 } }]
`;

const ROUTE_TO_V3 = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http: [{ route: [{ destination: { host: reviews, subset: v3 } }] }]
`;

/** ratings routed to subset v2, with a DestinationRule defining `subsets`. */
const ratingsRule = (subsets: string[]) => `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: ratings, namespace: default }
spec:
  host: ratings
  subsets: [${subsets.map((s) => `{ name: ${s}, labels: { version: ${s} } }`).join(', ')}]
`;

const RATINGS_TO_V2 = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ratings, namespace: default }
spec:
  hosts: [ratings]
  http: [{ route: [{ destination: { host: ratings, subset: v2 } }] }]
`;

const RATINGS_IST0101 =
  'Error [IST0101] (VirtualService default/ratings) Referenced host+subset in destinationrule not found: "ratings+v2"';

/**
 * `mizzen apply` against a real pilot process: config that is valid but
 * that Istio's analyzer has something to say about is applied, with the
 * analyzer's warnings printed, and the command succeeds.
 */
describe('mizzen apply with analyzer warnings', () => {
  let pilot: PilotProcess;
  let dir = '';
  const mizzen = (...args: string[]) => pilot.mizzen(...args);

  beforeAll(async () => {
    pilot = await startPilot('mizzen-cli-apply-', { 'services.yaml': SERVICES });
    dir = pilot.dir;
  });

  afterAll(() => pilot.stop());

  it('applies a route to a subset no DestinationRule defines, printing IST0101, and exits 0', () => {
    const file = path.join(dir, 'reviews-v3.yaml');
    fs.writeFileSync(file, ROUTE_TO_V3);
    const r = mizzen('apply', '-f', file);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout.split('\n')).toEqual([
      'Error [IST0101] (VirtualService default/reviews) Referenced host+subset in destinationrule not found: "reviews+v3"',
      'virtualservice.networking.istio.io/reviews created',
      '',
    ]);
    // It is in force.
    expect(mizzen('get', 'virtualservices').stdout).toContain('reviews');
  }, 30_000);

  it('warns (IST0109) when a second VirtualService claims a host sidecars already route', () => {
    const file = path.join(dir, 'reviews-too.yaml');
    fs.writeFileSync(
      file,
      ROUTE_TO_V3.replace('name: reviews, namespace', 'name: reviews-too, namespace').replace('v3', 'v1'),
    );
    const r = mizzen('apply', '-f', file);
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(
      'Error [IST0109] (VirtualService default/reviews-too) The VirtualServices default/reviews,default/reviews-too associated with mesh gateway define the same host reviews.default.svc.cluster.local which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource.',
    );
    expect(r.stdout).toContain('virtualservice.networking.istio.io/reviews-too created');
  }, 30_000);

  it('warns (IST0101) when applying or deleting a DestinationRule leaves a route to a subset it no longer defines', () => {
    const write = (name: string, yaml: string) => {
      const file = path.join(dir, name);
      fs.writeFileSync(file, yaml);
      return file;
    };
    const lines = (r: ReturnType<typeof mizzen>) => {
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      return r.stdout.split('\n');
    };
    const both = write('ratings.yaml', `${RATINGS_TO_V2}---${ratingsRule(['v1', 'v2'])}`);
    expect(lines(mizzen('apply', '-f', both))).toEqual([
      'virtualservice.networking.istio.io/ratings created',
      'destinationrule.networking.istio.io/ratings created',
      '',
    ]);
    // The rule loses v2, which the VirtualService still routes to.
    expect(lines(mizzen('apply', '-f', write('ratings-v1.yaml', ratingsRule(['v1']))))).toEqual([
      RATINGS_IST0101,
      'destinationrule.networking.istio.io/ratings configured',
      '',
    ]);
    const full = write('ratings-rule.yaml', ratingsRule(['v1', 'v2']));
    expect(lines(mizzen('apply', '-f', full))).toEqual([
      'destinationrule.networking.istio.io/ratings configured',
      '',
    ]);
    // Deleting the rule takes every subset with it.
    expect(lines(mizzen('delete', '-f', full))).toEqual([
      RATINGS_IST0101,
      'destinationrule.networking.istio.io/ratings deleted',
      '',
    ]);
    expect(mizzen('get', 'destinationrules').stdout).not.toContain('ratings');
    expect(mizzen('get', 'virtualservices').stdout).toContain('ratings');
  }, 30_000);
});
