import { type HTTPMatchRequest, parseConfig, type VirtualServiceSpec } from '@mizzen/api';
import { describe, expect, it } from 'vitest';
import { mergeMatches } from '../src/networking/delegates.js';
import { DEFAULT_MESH_CONFIG } from '../src/networking/mesh-config.js';
import { PushContext } from '../src/networking/push-context.js';
import { buildRegistry } from '../src/registry/build.js';
import { build, httpService, type Json, pushFor, sidecarNode } from './scoping.js';

const MESH = `
${httpService('productpage', 'default')}
${httpService('reviews', 'default')}
${httpService('reviews', 'team')}
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: default }
spec:
  host: reviews
  subsets: [{ name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: bookinfo, namespace: default }
spec:
  hosts: [productpage]
  http:
    - name: reviews
      match: [{ uri: { prefix: /reviews } }]
      timeout: 3s
      retries: { attempts: 2, retryOn: 5xx }
      delegate: { name: reviews, namespace: team }
    - name: rest
      route: [{ destination: { host: productpage } }]
---
`;

const DELEGATE = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: team }
spec:
  http:
    - name: jason
      match: [{ headers: { end-user: { exact: jason } } }]
      route: [{ destination: { host: reviews.default.svc.cluster.local, subset: v2 } }]
    - name: v3
      match: [{ uri: { prefix: /reviews/v3 } }]
      timeout: 1s
      route: [{ destination: { host: reviews } }]
    - name: ratings
      match: [{ uri: { prefix: /ratings } }]
      route: [{ destination: { host: reviews.default.svc.cluster.local, subset: v2 } }]
    - route: [{ destination: { host: reviews.default.svc.cluster.local, subset: v1 } }]
---
`;

const CLIENT = sidecarNode('client', 'default', { app: 'client' });

function routes(yaml: string, node = CLIENT): Json[] {
  const b = build(pushFor(yaml), node);
  return b.route('9080').virtual_hosts.find((v: Json) => v.name.startsWith('productpage')).routes;
}

const summary = (r: Json) => ({
  name: r.name,
  match: r.match,
  cluster: r.route?.cluster,
  timeout: r.route?.timeout,
  retries: r.route?.retry_policy?.num_retries,
});

describe('VirtualService delegate', () => {
  it('replaces the delegating route by the delegate’s routes, each AND-ed with the root’s match', () => {
    expect(routes(MESH + DELEGATE).map(summary)).toEqual([
      {
        name: 'reviews-jason',
        match: { prefix: '/reviews', headers: [{ name: 'end-user', string_match: { exact: 'jason' } }] },
        cluster: 'outbound|9080|v2|reviews.default.svc.cluster.local',
        // The root's timeout and retries fill what the delegate route leaves unset.
        timeout: '3s',
        retries: 2,
      },
      {
        name: 'reviews-v3',
        match: { prefix: '/reviews/v3' },
        // A short name in the delegate is its own namespace's service.
        cluster: 'outbound|9080||reviews.team.svc.cluster.local',
        timeout: '1s',
        retries: 2,
      },
      // "ratings" (/ratings under /reviews) can never match: Istio drops it.
      {
        name: 'reviews',
        match: { prefix: '/reviews' },
        cluster: 'outbound|9080|v1|reviews.default.svc.cluster.local',
        timeout: '3s',
        retries: 2,
      },
      {
        name: 'rest',
        match: { prefix: '/' },
        cluster: 'outbound|9080||productpage.default.svc.cluster.local',
        timeout: '0s',
        retries: 2,
      },
    ]);
  });

  it('a delegate on its own routes nothing; a missing or unexported delegate drops only that route, with a warning', () => {
    const alone = build(
      pushFor(MESH.replace(/delegate: .*\n/, 'route: [{ destination: { host: reviews } }]\n') + DELEGATE),
      CLIENT,
    );
    // reviews.team has no VirtualService of its own: the delegate (no hosts) is not one.
    const team = alone.route('9080').virtual_hosts.find((v: Json) => v.name.startsWith('reviews.team'));
    expect(team.routes.map((r: Json) => r.name)).toEqual(['default']);

    const missing = pushFor(MESH);
    expect(routes(MESH).map((r) => r.name)).toEqual(['rest']);
    build(missing, CLIENT);
    expect([...missing.warnings]).toEqual([
      'Error [IST0101] (VirtualService default/bookinfo) Referenced delegate not found: "team/reviews"',
    ]);

    const privateDelegate = DELEGATE.replace('spec:\n  http:', 'spec:\n  exportTo: ["."]\n  http:');
    const hidden = pushFor(MESH + privateDelegate);
    expect(routes(MESH + privateDelegate).map((r) => r.name)).toEqual(['rest']);
    expect([...hidden.warnings]).toEqual([
      'VirtualService default/bookinfo http[0]: delegate VirtualService team/reviews is not exported to namespace default; the route is ignored',
    ]);
    // Exported to the root's namespace by name: it works.
    expect(
      routes(MESH + DELEGATE.replace('spec:\n  http:', 'spec:\n  exportTo: [default]\n  http:')),
    ).toHaveLength(4);
  });

  it('only one level: a delegate’s own delegate routes are ignored, and a VirtualService with hosts is no delegate', () => {
    // Validation rejects a delegate that delegates again; a store written around it still must not loop.
    const parsed = parseConfig(MESH + DELEGATE, 'mesh.yaml');
    const delegate = parsed.resources.find(
      (r) => r.kind === 'VirtualService' && r.metadata.namespace === 'team',
    )!;
    (delegate.spec as VirtualServiceSpec).http!.unshift({
      delegate: { name: 'bookinfo', namespace: 'default' },
    });
    const push = new PushContext(1, parsed.resources, buildRegistry(parsed.resources), DEFAULT_MESH_CONFIG);
    expect(push.virtualServices.map((v) => v.metadata.name)).toEqual(['bookinfo']);
    expect((push.virtualServices[0]!.spec as VirtualServiceSpec).http!.map((r) => r.name)).toEqual([
      'reviews-jason',
      'reviews-v3',
      'reviews',
      'rest',
    ]);
    expect([...push.warnings]).toEqual([
      'VirtualService team/reviews http[0]: a delegate cannot delegate again (only one level); the route is ignored',
      // The delegate route put first has no match: Istio's analyzer says what follows it never runs.
      'Warning [IST0130] (VirtualService team/reviews) VirtualService rule "jason" not used (route without matches defined before).',
      'Warning [IST0130] (VirtualService team/reviews) VirtualService rule "ratings" not used (route without matches defined before).',
      'Warning [IST0130] (VirtualService team/reviews) VirtualService rule "v3" not used (route without matches defined before).',
      'Warning [IST0130] (VirtualService team/reviews) VirtualService rule #4 not used (only the last rule can have no matches).',
    ]);
    const withHosts = pushFor(
      `${MESH}${DELEGATE.replace('spec:\n  http:', 'spec:\n  hosts: [reviews]\n  http:')}`,
    );
    expect([...withHosts.warnings]).toEqual([
      'VirtualService default/bookinfo http[0]: delegate VirtualService team/reviews has hosts, so it cannot be a delegate; the route is ignored',
    ]);
  });

  it('works for gateways too: the root bound to a gateway, the delegate without gateways', () => {
    const yaml = `${MESH.replace('hosts: [productpage]', 'hosts: ["bookinfo.example.com"]\n  gateways: [istio-system/bookinfo-gw]')}${DELEGATE}
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: bookinfo-gw, namespace: istio-system }
spec:
  selector: { istio: ingressgateway }
  servers: [{ port: { number: 80, name: http, protocol: HTTP }, hosts: ["*"] }]
`;
    const gw = build(pushFor(yaml), {
      id: 'router~127.0.0.1~istio-ingressgateway.istio-system~istio-system.svc.cluster.local',
      metadata: {
        NAMESPACE: 'istio-system',
        LABELS: { istio: 'ingressgateway' },
        INSTANCE_IPS: '127.0.0.1',
        MIZZEN_CAPTURE_MODE: 'proxy',
        MIZZEN_GATEWAY_PORTS: { '80': 8080 },
      },
    });
    const vh = gw.routes[0].virtual_hosts.find((v: Json) => v.domains.includes('bookinfo.example.com'));
    expect(vh.routes.map((r: Json) => [r.name, r.route.cluster])).toEqual([
      ['reviews-jason', 'outbound|9080|v2|reviews.default.svc.cluster.local'],
      ['reviews-v3', 'outbound|9080||reviews.team.svc.cluster.local'],
      ['reviews', 'outbound|9080|v1|reviews.default.svc.cluster.local'],
      ['rest', 'outbound|9080||productpage.default.svc.cluster.local'],
    ]);
  });
});

describe('delegate match merging (Istio’s mergeHTTPMatchRequests)', () => {
  const m = (x: HTTPMatchRequest) => x;
  it('keeps each compatible root × delegate pair, merged; a delegate match compatible with no root match drops the route', () => {
    const root = [m({ uri: { prefix: '/a' } }), m({ uri: { prefix: '/b' }, headers: { x: { exact: '1' } } })];
    expect(mergeMatches(root, [m({ uri: { prefix: '/a/1' } })])).toEqual([{ uri: { prefix: '/a/1' } }]);
    // Compatible with both root matches: both pairs.
    expect(mergeMatches(root, [m({ headers: { y: { exact: '2' } } })])).toEqual([
      { uri: { prefix: '/a' }, headers: { y: { exact: '2' } } },
      { uri: { prefix: '/b' }, headers: { x: { exact: '1' }, y: { exact: '2' } } },
    ]);
    expect(mergeMatches(root, [m({ headers: { x: { exact: '2' } } })])).toEqual([
      { uri: { prefix: '/a' }, headers: { x: { exact: '2' } } },
    ]);
    expect(mergeMatches(root, [m({ uri: { prefix: '/b/c' }, headers: { y: { exact: '2' } } })])).toEqual([
      { uri: { prefix: '/b/c' }, headers: { x: { exact: '1' }, y: { exact: '2' } } },
    ]);
    expect(mergeMatches(root, [m({ uri: { prefix: '/c' } })])).toBeUndefined();
    expect(mergeMatches([m({ uri: { exact: '/a' } })], [m({ uri: { prefix: '/a' } })])).toBeUndefined();
    expect(mergeMatches([m({ uri: { exact: '/a' } })], [m({ uri: { exact: '/a' } })])).toEqual([
      { uri: { exact: '/a' } },
    ]);
    expect(mergeMatches([m({ uri: { prefix: '/a' } })], [m({ uri: { exact: '/a/x' } })])).toEqual([
      { uri: { exact: '/a/x' } },
    ]);
    // No root match: the delegate's as they are; no delegate match: the root's.
    expect(mergeMatches([], [m({ uri: { prefix: '/x' } })])).toEqual([{ uri: { prefix: '/x' } }]);
    expect(mergeMatches([m({ uri: { prefix: '/x' } })], [])).toEqual([{ uri: { prefix: '/x' } }]);
    // Names join, ports and source labels must agree.
    expect(mergeMatches([m({ name: 'r', port: 80 })], [m({ name: 'd' })])).toEqual([
      { name: 'r-d', port: 80 },
    ]);
    expect(mergeMatches([m({ port: 80 })], [m({ port: 81 })])).toBeUndefined();
    expect(
      mergeMatches([m({ sourceLabels: { app: 'a' } })], [m({ sourceLabels: { app: 'b' } })]),
    ).toBeUndefined();
    expect(mergeMatches([m({ ignoreUriCase: true })], [m({})])).toBeUndefined();
  });
});
