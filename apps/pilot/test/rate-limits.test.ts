import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '@mizzen/api';
import { compileListener, RouteTable } from '@mizzen/proxy';
import { Snapshot, TypeUrl, type XdsNode } from '@mizzen/xds';
import { describe, expect, it } from 'vitest';
import { proxyFromNode } from '../src/model/proxy.js';
import { generateResources } from '../src/networking/generate.js';
import { DEFAULT_MESH_CONFIG } from '../src/networking/mesh-config.js';
import { PushContext } from '../src/networking/push-context.js';
import { tokenBucket } from '../src/networking/rate-limits.js';
import { buildRegistry } from '../src/registry/build.js';

const here = path.dirname(fileURLToPath(import.meta.url));
type Json = Record<string, unknown>;

const NODES: Record<string, XdsNode> = {
  sidecar: {
    id: 'sidecar~127.0.0.1~productpage-v1.default~default.svc.cluster.local',
    metadata: {
      NAMESPACE: 'default',
      LABELS: { app: 'productpage', version: 'v1' },
      SERVICE_ACCOUNT: 'bookinfo-productpage',
      INSTANCE_IPS: '127.0.0.1',
      MIZZEN_CAPTURE_MODE: 'proxy',
      MIZZEN_SERVICE: 'productpage',
      MIZZEN_OUTBOUND_PORT: 15001,
      MIZZEN_PORTS: [{ name: 'http', port: 9080, targetPort: 19080, protocol: 'HTTP', listenPort: 15006 }],
    },
  },
  gateway: {
    id: 'router~127.0.0.1~istio-ingressgateway.istio-system~istio-system.svc.cluster.local',
    metadata: {
      NAMESPACE: 'istio-system',
      LABELS: { istio: 'ingressgateway', app: 'istio-ingressgateway' },
      INSTANCE_IPS: '127.0.0.1',
      MIZZEN_CAPTURE_MODE: 'proxy',
      MIZZEN_GATEWAY_PORTS: { '80': 8080, '81': 8081 },
    },
  },
};

function push(): PushContext {
  const text = fs.readFileSync(path.join(here, 'fixtures', 'rate-limits.yaml'), 'utf8');
  const parsed = parseConfig(text, 'rate-limits.yaml');
  expect(parsed.issues.filter((i) => i.severity === 'error')).toEqual([]);
  return new PushContext(1, parsed.resources, buildRegistry(parsed.resources), DEFAULT_MESH_CONFIG);
}

const HCM_SUFFIX = 'HttpConnectionManager';

/** What rate limiting puts in a proxy's config: each HCM's filters by listener, each route table's virtual host actions. */
function rateLimitParts(resources: Record<string, Json[]>): Json {
  const listeners: Json = {};
  for (const l of resources[TypeUrl.Listener] ?? []) {
    for (const chain of (l.filter_chains as Json[]) ?? []) {
      for (const f of (chain.filters as { typed_config: Json }[]) ?? []) {
        if (!String(f.typed_config['@type']).endsWith(HCM_SUFFIX)) continue;
        const tc = f.typed_config;
        const filters = (tc.http_filters as { name: string }[]).filter((h) => /ratelimit/.test(h.name));
        const vhosts = ((tc.route_config as Json | undefined)?.virtual_hosts as Json[] | undefined) ?? [];
        listeners[String(l.name)] ??= {
          filters,
          order: (tc.http_filters as { name: string }[]).map((h) => h.name),
          ...(vhosts.some((v) => v.rate_limits) ? { rate_limits: vhosts.map((v) => v.rate_limits) } : {}),
        };
      }
    }
  }
  const routes: Json = {};
  for (const r of resources[TypeUrl.RouteConfiguration] ?? []) {
    const vhosts = (r.virtual_hosts as Json[]) ?? [];
    if (vhosts.some((v) => v.rate_limits)) routes[String(r.name)] = vhosts.map((v) => v.rate_limits);
  }
  return { listeners, routes };
}

/**
 * RateLimitPolicy translated for a sidecar's inbound connection managers and
 * a gateway's, checked against a golden file (UPDATE_GOLDEN=1 rewrites it),
 * encoded as real Envoy messages, and compiled by the proxy that will run it.
 */
describe('RateLimitPolicy translation', () => {
  it('puts the filters and actions where they apply, in Envoy types the proxy accepts', () => {
    const p = push();
    const actual: Json = {};
    for (const [kind, node] of Object.entries(NODES)) {
      const resources = generateResources(p, proxyFromNode(node)) as unknown as Record<string, Json[]>;
      expect(() => Snapshot.build(resources as never)).not.toThrow();
      for (const l of resources[TypeUrl.Listener] ?? [])
        expect(() => compileListener(l as never)).not.toThrow();
      for (const r of resources[TypeUrl.RouteConfiguration] ?? [])
        expect(() => RouteTable.compile(r as never)).not.toThrow();
      actual[kind] = rateLimitParts(resources);
    }
    const file = path.join(here, 'golden', 'rate-limits.json');
    const text = `${JSON.stringify(actual, null, 2)}\n`;
    if (process.env.UPDATE_GOLDEN) fs.writeFileSync(file, text);
    expect(fs.existsSync(file), `${file} is missing; run with UPDATE_GOLDEN=1 to create it`).toBe(true);
    expect(text).toBe(fs.readFileSync(file, 'utf8'));
  });

  it('turns N per unit into the smoothest token bucket Envoy allows (fill interval of at least 50ms)', () => {
    expect(tokenBucket(100, 'SECOND')).toEqual({
      max_tokens: 100,
      tokens_per_fill: 5,
      fill_interval: '0.05s',
    });
    expect(tokenBucket(10, 'MINUTE')).toEqual({ max_tokens: 10, tokens_per_fill: 1, fill_interval: '6s' });
    expect(tokenBucket(7, 'SECOND')).toEqual({ max_tokens: 7, tokens_per_fill: 7, fill_interval: '1s' });
    expect(tokenBucket(3, 'HOUR')).toEqual({ max_tokens: 3, tokens_per_fill: 1, fill_interval: '1200s' });
    expect(tokenBucket(1, 'DAY')).toEqual({ max_tokens: 1, tokens_per_fill: 1, fill_interval: '86400s' });
  });
});
