import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '@mizzen/api';
import { compileListener } from '@mizzen/proxy';
import { encodeMessage, type XdsNode } from '@mizzen/xds';
import { describe, expect, it } from 'vitest';
import { parseMeshConfig } from '../src/kube/mesh-config.js';
import { proxyFromNode } from '../src/model/proxy.js';
import { generateResources } from '../src/networking/generate.js';
import { DEFAULT_MESH_CONFIG } from '../src/networking/mesh-config.js';
import { PushContext } from '../src/networking/push-context.js';
import { parseMeshTelemetry } from '../src/networking/telemetry.js';
import { buildRegistry } from '../src/registry/build.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const HCM = 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager';

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
      MIZZEN_STATS_PORT: 15020,
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
      MIZZEN_GATEWAY_PORTS: { '80': 8080 },
    },
  },
};

const GATEWAY = `
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: gw, namespace: istio-system, creationTimestamp: "2026-01-01T00:00:04Z" }
spec:
  selector: { istio: ingressgateway }
  servers: [{ port: { number: 80, name: http, protocol: HTTP }, hosts: ['*'] }]
`;

function push(): PushContext {
  const text = `${fs.readFileSync(path.join(here, 'fixtures', 'telemetry-mesh.yaml'), 'utf8')}---${GATEWAY}`;
  const parsed = parseConfig(text, 'telemetry-mesh.yaml');
  expect(parsed.issues.filter((i) => i.severity === 'error')).toEqual([]);
  const mesh = parseMeshConfig(
    fs.readFileSync(path.join(here, 'fixtures', 'telemetry-mesh-config.yaml'), 'utf8'),
    DEFAULT_MESH_CONFIG,
  );
  return new PushContext(1, parsed.resources, buildRegistry(parsed.resources), mesh);
}

/** Each listener's HTTP connection manager telemetry parts, by listener. */
function telemetryOf(listeners: Record<string, unknown>[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const l of listeners) {
    for (const chain of (l.filter_chains as Record<string, unknown>[]) ?? []) {
      for (const f of (chain.filters as { typed_config: Record<string, unknown> }[]) ?? []) {
        const tc = f.typed_config;
        if (!String(tc['@type']).endsWith(HCM)) continue;
        // Every config is a real Envoy message.
        const { '@type': _type, ...message } = tc;
        expect(() => encodeMessage(HCM, message)).not.toThrow();
        // Every chain of a listener (plaintext, mTLS) carries the same connection manager: keep the first.
        out[String(l.name)] ??= {
          tracing: tc.tracing,
          access_log: tc.access_log,
          http_filters: (tc.http_filters as { name: string }[]).map((h) =>
            h.name === 'istio.stats' ? h : h.name,
          ),
        };
      }
    }
  }
  return out;
}

/**
 * Golden files for the Telemetry API's translation: tracing, access logs
 * and Istio's stats filter in each HCM, as Istio writes them, from MeshConfig
 * extension providers and Telemetry resources at mesh and workload scope.
 */
describe('Telemetry translation (golden files)', () => {
  for (const [kind, node] of Object.entries(NODES)) {
    it(`builds the ${kind}'s telemetry`, () => {
      const resources = generateResources(push(), proxyFromNode(node));
      const listeners = resources['type.googleapis.com/envoy.config.listener.v3.Listener'] as Record<
        string,
        unknown
      >[];
      const actual = `${JSON.stringify(telemetryOf(listeners), null, 2)}\n`;
      const file = path.join(here, 'golden', `telemetry-${kind}.json`);
      if (process.env.UPDATE_GOLDEN) fs.writeFileSync(file, actual);
      expect(fs.existsSync(file), `${file} is missing; run with UPDATE_GOLDEN=1 to create it`).toBe(true);
      expect(actual).toBe(fs.readFileSync(file, 'utf8'));
      // And the data plane accepts it: every listener compiles in the proxy.
      for (const l of listeners) if (!l.bind_to_port || l.bind_to_port !== false) compileListener(l as never);
    });
  }

  it('reads MeshConfig telemetry and names bad fields', () => {
    const mesh = parseMeshTelemetry({
      defaultProviders: { tracing: ['otel'] },
      extensionProviders: [{ name: 'otel', opentelemetry: { service: 'c', port: 4318, http: {} } }],
    });
    expect(mesh.extensionProviders[0]).toEqual({
      name: 'otel',
      kind: 'opentelemetry',
      service: 'c',
      port: 4318,
      http: { path: '/v1/traces', headers: [] },
    });
    expect(() => parseMeshTelemetry({ defaultProviders: { tracing: ['nope'] } })).toThrow(
      'mesh config: defaultProviders names "nope", which is not an extension provider',
    );
    expect(() =>
      parseMeshTelemetry({ extensionProviders: [{ name: 'x', opentelemetry: { service: 'c', port: 0 } }] }),
    ).toThrow('mesh config: extensionProviders[0].opentelemetry.port must be a port number');
    expect(() => parseMeshTelemetry({ defaultConfig: { tracing: { sampling: 200 } } })).toThrow(
      'mesh config: defaultConfig.tracing.sampling must be a percentage between 0 and 100',
    );
  });

  it('without Telemetry or providers: only the stats filter (Prometheus is the default metrics provider)', () => {
    const parsed = parseConfig(
      fs.readFileSync(path.join(here, 'fixtures', 'telemetry-mesh.yaml'), 'utf8'),
      'x.yaml',
    );
    const plain = parsed.resources.filter((r) => r.kind !== 'Telemetry');
    const ctx = new PushContext(1, plain, buildRegistry(plain), DEFAULT_MESH_CONFIG);
    const listeners = generateResources(ctx, proxyFromNode(NODES.sidecar!))[
      'type.googleapis.com/envoy.config.listener.v3.Listener'
    ] as Record<string, unknown>[];
    for (const t of Object.values(telemetryOf(listeners)) as {
      tracing?: unknown;
      access_log?: unknown;
      http_filters: unknown[];
    }[]) {
      expect(t.tracing).toBeUndefined();
      expect(t.access_log).toBeUndefined();
      expect(t.http_filters).toContainEqual(expect.objectContaining({ name: 'istio.stats' }));
    }
  });

  it("puts each side's access logs on tcp_proxy, as Istio does for TCP, and a workload's Telemetry turns them off", () => {
    const yaml = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: mongo, namespace: default }
spec:
  hosts: [mongo.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 27017, name: mongo, protocol: TCP }]
  workloadSelector: { labels: { app: mongo } }
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: mesh-default, namespace: istio-system }
spec:
  accessLogging:
    - providers: [{ name: envoy }]
      filter: { expression: "response.flags != '-'" }
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: { name: quiet-server, namespace: default }
spec:
  selector: { matchLabels: { app: productpage } }
  accessLogging:
    - match: { mode: SERVER }
      providers: [{ name: envoy }]
      disabled: true
`;
    const parsed = parseConfig(yaml, 'tcp.yaml');
    expect(parsed.issues.filter((i) => i.severity === 'error')).toEqual([]);
    const mesh = parseMeshConfig('accessLogEncoding: JSON\n', DEFAULT_MESH_CONFIG);
    const ctx = new PushContext(1, parsed.resources, buildRegistry(parsed.resources), mesh);
    const node = structuredClone(NODES.sidecar!);
    (node.metadata as Record<string, unknown>).MIZZEN_PORTS = [
      { name: 'mongo', port: 27017, targetPort: 27018, protocol: 'TCP', listenPort: 15007 },
    ];
    const listeners = generateResources(ctx, proxyFromNode(node))[
      'type.googleapis.com/envoy.config.listener.v3.Listener'
    ] as {
      name: string;
      traffic_direction: string;
      filter_chains: { filters: { name: string; typed_config: Record<string, unknown> }[] }[];
    }[];
    const tcpProxies = (direction: string) =>
      listeners
        .filter((l) => l.traffic_direction === direction)
        .flatMap((l) => l.filter_chains.map((c) => c.filters.at(-1)!))
        .filter((f) => f.name === 'envoy.filters.network.tcp_proxy');
    const outbound = tcpProxies('OUTBOUND');
    // virtualOutbound's passthrough and the mongo port's chain.
    expect(outbound.length).toBeGreaterThanOrEqual(2);
    for (const f of outbound)
      expect(f.typed_config.access_log).toEqual([
        {
          name: 'envoy.access_loggers.file',
          typed_config: {
            '@type': 'type.googleapis.com/envoy.extensions.access_loggers.file.v3.FileAccessLog',
            path: '/dev/stdout',
            log_format: { json_format: expect.objectContaining({ response_flags: '%RESPONSE_FLAGS%' }) },
          },
          filter: {
            extension_filter: {
              name: 'envoy.access_loggers.extension_filters.cel',
              typed_config: {
                '@type':
                  'type.googleapis.com/envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter',
                expression: "response.flags != '-'",
              },
            },
          },
        },
      ]);
    const inbound = tcpProxies('INBOUND');
    expect(inbound.length).toBeGreaterThan(0);
    for (const f of inbound) expect(f.typed_config.access_log).toBeUndefined();
    // The proxy takes them as the chain's access logs.
    const compiled = compileListener(listeners.find((l) => l.name === 'virtualOutbound') as never);
    const chain = compiled.chains[0]!.filter;
    expect(chain.kind === 'tcp' && chain.telemetry.accessLogs?.map((a) => a.filter)).toEqual([
      "response.flags != '-'",
    ]);
  });
});
