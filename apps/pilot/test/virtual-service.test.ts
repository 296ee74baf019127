import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '@mizzen/api';
import { RouteTable } from '@mizzen/proxy';
import { Snapshot, TypeUrl, type XdsNode } from '@mizzen/xds';
import { describe, expect, it } from 'vitest';
import type { CredentialSource, TlsCredential } from '../src/credentials/source.js';
import { proxyFromNode } from '../src/model/proxy.js';
import { generateResources } from '../src/networking/generate.js';
import { DEFAULT_MESH_CONFIG } from '../src/networking/mesh-config.js';
import { PushContext } from '../src/networking/push-context.js';
import { buildRegistry } from '../src/registry/build.js';

const here = path.dirname(fileURLToPath(import.meta.url));
type Json = Record<string, unknown>;

const CREDENTIALS: CredentialSource = {
  resolve: (namespace, name) =>
    namespace === 'istio-system' && name === 'shop-credential'
      ? { credential: { certificateChain: 'SHOP-CERT', privateKey: 'SHOP-KEY' } satisfies TlsCredential }
      : { problem: `credential ${namespace}/${name} not found in the test store` },
  resolveCa: (namespace, name) => ({
    problem: `credential ${namespace}/${name} has no CA in the test store`,
  }),
  onChange: () => () => {},
};

function push(): PushContext {
  const text = fs.readFileSync(path.join(here, 'fixtures', 'virtual-service.yaml'), 'utf8');
  const parsed = parseConfig(text, 'virtual-service.yaml');
  expect(parsed.issues.filter((i) => i.severity === 'error')).toEqual([]);
  return new PushContext(
    1,
    parsed.resources,
    buildRegistry(parsed.resources),
    DEFAULT_MESH_CONFIG,
    undefined,
    CREDENTIALS,
  );
}

const sidecar = (namespace: string): XdsNode => ({
  id: `sidecar~127.0.0.1~client.${namespace}~${namespace}.svc.cluster.local`,
  metadata: {
    NAMESPACE: namespace,
    LABELS: { app: 'client' },
    INSTANCE_IPS: '127.0.0.1',
    MIZZEN_CAPTURE_MODE: 'proxy',
    MIZZEN_OUTBOUND_PORT: 15001,
  },
});

const NODES: Record<string, XdsNode> = {
  'sidecar in default': sidecar('default'),
  'sidecar in other': sidecar('other'),
  'ingress gateway': {
    id: 'router~127.0.0.1~istio-ingressgateway.istio-system~istio-system.svc.cluster.local',
    metadata: {
      NAMESPACE: 'istio-system',
      LABELS: { istio: 'ingressgateway' },
      INSTANCE_IPS: '127.0.0.1',
      MIZZEN_CAPTURE_MODE: 'proxy',
      MIZZEN_GATEWAY_PORTS: { '80': 8080, '443': 8443 },
    },
  },
};

const OURS = /^(shop|sticky)\.|^shop\.example\.com/;

/** The virtual hosts for this fixture's hosts, by route table. */
function routeTables(resources: Record<string, Json[]>): Json {
  const out: Json = {};
  for (const rc of resources[TypeUrl.RouteConfiguration] ?? []) {
    const vhosts = ((rc.virtual_hosts as Json[]) ?? []).filter((v) => OURS.test(String(v.name)));
    if (vhosts.length) out[String(rc.name)] = vhosts;
  }
  return out;
}

function build(node: XdsNode, p = push()): Record<string, Json[]> {
  const resources = generateResources(p, proxyFromNode(node)) as unknown as Record<string, Json[]>;
  expect(() => Snapshot.build(resources as never)).not.toThrow();
  // And the proxy applies every route table (no NACK).
  for (const rc of resources[TypeUrl.RouteConfiguration] ?? [])
    expect(() => RouteTable.compile(rc as never), String(rc.name)).not.toThrow();
  return resources;
}

function routes(resources: Record<string, Json[]>, table: string, vhost: string): Json[] {
  const rc = resources[TypeUrl.RouteConfiguration]!.find((r) => r.name === table)!;
  return ((rc.virtual_hosts as Json[]).find((v) => v.name === vhost)!.routes as Json[]) ?? [];
}

const named = (list: Json[], name: string) => list.find((r) => r.name === name) as Json;

/**
 * Every VirtualService http field, translated for sidecars and a gateway.
 * The golden file is the exact Envoy config; UPDATE_GOLDEN=1 rewrites it —
 * read the diff. The focused cases below say what matters in it.
 */
describe('VirtualService http translation (golden)', () => {
  it('translates every field into route tables Envoy and the proxy accept', () => {
    const p = push();
    const all: Json = {};
    for (const [where, node] of Object.entries(NODES)) all[where] = routeTables(build(node, p));
    const file = path.join(here, 'golden', 'virtual-service.json');
    const actual = `${JSON.stringify(all, null, 2)}\n`;
    if (process.env.UPDATE_GOLDEN) fs.writeFileSync(file, actual);
    expect(fs.existsSync(file), `${file} is missing; run with UPDATE_GOLDEN=1 to create it`).toBe(true);
    expect(actual).toBe(fs.readFileSync(file, 'utf8'));
  });

  it('keeps a destination’s headers when the others of its route weigh 0 (the "100 to v3" step)', () => {
    const shop = routes(build(NODES['sidecar in default']!), '8000', 'shop.default.svc.cluster.local:8000');
    const action = named(shop, 'shifted-to-v3').route as Json;
    expect(action.weighted_clusters).toEqual({
      clusters: [
        {
          name: 'outbound|8000|v3|shop.default.svc.cluster.local',
          weight: 100,
          response_headers_to_add: [
            { header: { key: 'x-version', value: 'v3' }, append_action: 'OVERWRITE_IF_EXISTS_OR_ADD' },
          ],
        },
      ],
    });
  });

  it('puts a single destination’s headers on the route after the route’s own, its host as the authority', () => {
    const shop = routes(build(NODES['sidecar in default']!), '8000', 'shop.default.svc.cluster.local:8000');
    const r = named(shop, 'headers');
    const keys = (list: unknown) => (list as { header: { key: string } }[]).map((h) => h.header.key);
    expect(keys(r.request_headers_to_add)).toEqual(['x-route', 'x-route-added', 'x-dest']);
    expect(keys(r.response_headers_to_add)).toEqual([
      'x-served-by',
      'x-route-trail',
      'x-served-by',
      'x-dest-trail',
    ]);
    expect(r.response_headers_to_remove).toEqual(['x-internal', 'x-v1-secret']);
    expect((r.route as Json).host_rewrite_literal).toBe('v1.shop.internal');
  });

  it('derives redirect ports as Istio does, leaving out a scheme’s default port', () => {
    const sidecarRoutes = routes(
      build(NODES['sidecar in default']!),
      '8000',
      'shop.default.svc.cluster.local:8000',
    );
    expect(named(sidecarRoutes, 'redirect-from-request-port').redirect).toEqual({
      path_redirect: '/here',
      host_redirect: 'shop.example.com',
      scheme_redirect: 'https',
      port_redirect: 8000,
      response_code: 'PERMANENT_REDIRECT',
    });
    expect(named(sidecarRoutes, 'redirect-protocol-default').redirect).toEqual({
      scheme_redirect: 'https',
      response_code: 'MOVED_PERMANENTLY',
    });
    expect(named(sidecarRoutes, 'redirect-default-port-dropped').redirect).toEqual({
      host_redirect: 'shop.example.com',
      response_code: 'FOUND',
    });
    // At the gateway, the request port is the server's: 80 on HTTP, 443 on HTTPS — both a default, both left out.
    const gw = build(NODES['ingress gateway']!);
    for (const table of ['http.8080', 'https.443.https.shop-gateway.default']) {
      const go = routes(gw, table, `shop.example.com:${table.startsWith('http.') ? '80' : '443'}`).find(
        (r) => (r.match as Json).prefix === '/go',
      )!;
      expect(go.redirect, table).toEqual({ path_redirect: '/gone', response_code: 'MOVED_PERMANENTLY' });
    }
  });

  it('merges the VirtualServices of one gateway host oldest first, first match winning across them', () => {
    const gw = build(NODES['ingress gateway']!);
    const prefixes = routes(gw, 'http.8080', 'shop.example.com:80').map((r) => (r.match as Json).prefix);
    // shop-public-b is older: its routes (catch-all included) come before shop-public-a's.
    expect(prefixes).toEqual(['/b', '/go', '/', '/a', '/']);
  });

  it('applies sourceNamespace matches to sidecars of that namespace only', () => {
    const names = (node: XdsNode) =>
      routes(build(node), '8000', 'shop.default.svc.cluster.local:8000')
        .filter((r) => String(r.name ?? '').startsWith('matches.'))
        .map((r) => r.name);
    expect(names(NODES['sidecar in default']!)).not.toContain('matches.from-other');
    expect(names(NODES['sidecar in other']!)).toContain('matches.from-other');
    // A match for another port never applies.
    expect(names(NODES['sidecar in other']!)).not.toContain('matches.port-elsewhere');
  });

  it('keeps retries on a consistent-hash route’s host unless retryIgnorePreviousHosts says otherwise', () => {
    const sticky = routes(
      build(NODES['sidecar in default']!),
      '8000',
      'sticky.default.svc.cluster.local:8000',
    );
    const policy = (r: Json) => (r.route as Json).retry_policy as Json;
    expect(policy(sticky[1]!).retry_host_predicate).toBeUndefined();
    expect(policy(sticky[0]!).retry_host_predicate).toEqual([
      {
        name: 'envoy.retry_host_predicates.previous_hosts',
        typed_config: {
          '@type': 'type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate',
        },
      },
    ]);
    const shop = routes(build(NODES['sidecar in default']!), '8000', 'shop.default.svc.cluster.local:8000');
    expect(policy(named(shop, 'retries'))).toEqual({
      retry_on: 'gateway-error,connect-failure,refused-stream,reset,retriable-4xx,retriable-status-codes',
      num_retries: 3,
      retriable_status_codes: [418],
      host_selection_retry_max_attempts: 5,
      per_try_timeout: '0.3s',
      retry_back_off: { base_interval: '0.05s' },
    });
    expect((named(shop, 'no-retries').route as Json).retry_policy).toBeUndefined();
  });

  it('warns that sidecars see only the oldest of two VirtualServices for one host (IST0109)', () => {
    const p = push();
    build(NODES['sidecar in default']!, p);
    expect([...p.warnings]).toContainEqual(
      'Error [IST0109] (VirtualService default/shop-too) The VirtualServices default/shop,default/shop-too associated with mesh gateway define the same host shop.default.svc.cluster.local which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource.',
    );
    const shop = routes(
      build(NODES['sidecar in default']!, p),
      '8000',
      'shop.default.svc.cluster.local:8000',
    );
    expect(shop.at(-1)!.route).toMatchObject({ cluster: 'outbound|8000||shop.default.svc.cluster.local' });
  });
});
