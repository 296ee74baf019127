import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseConfig } from '@mizzen/api';
import { Snapshot, type XdsNode } from '@mizzen/xds';
import { describe, expect, it } from 'vitest';
import { proxyFromNode } from '../src/model/proxy.js';
import { generateResources } from '../src/networking/generate.js';
import { DEFAULT_MESH_CONFIG } from '../src/networking/mesh-config.js';
import { PushContext } from '../src/networking/push-context.js';
import { buildRegistry } from '../src/registry/build.js';

const here = path.dirname(fileURLToPath(import.meta.url));

function loadMesh(): PushContext {
  const text = fs.readFileSync(path.join(here, 'fixtures', 'small-mesh.yaml'), 'utf8');
  const parsed = parseConfig(text, 'small-mesh.yaml');
  expect(parsed.issues.filter((i) => i.severity === 'error')).toEqual([]);
  return new PushContext(1, parsed.resources, buildRegistry(parsed.resources), DEFAULT_MESH_CONFIG);
}

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
      LABELS: { istio: 'ingressgateway' },
      INSTANCE_IPS: '127.0.0.1',
      MIZZEN_CAPTURE_MODE: 'proxy',
      MIZZEN_GATEWAY_PORTS: { '80': 8080, '443': 8443 },
    },
  },
  grpc: {
    id: 'sidecar~10.1.1.1~client.default~default.svc.cluster.local',
    metadata: { GENERATOR: 'grpc', NAMESPACE: 'default' },
  },
};

/**
 * Golden files: the exact Envoy config a small mesh turns into, per proxy
 * type. Run with UPDATE_GOLDEN=1 to rewrite them after an intended change,
 * then read the diff.
 */
describe('translation of Istio config to Envoy xDS (golden files)', () => {
  for (const [kind, node] of Object.entries(NODES)) {
    it(`builds the ${kind} config`, () => {
      const push = loadMesh();
      const resources = generateResources(push, proxyFromNode(node));
      // Every resource must be a valid Envoy message.
      expect(() => Snapshot.build(resources)).not.toThrow();
      const file = path.join(here, 'golden', `${kind}.json`);
      const actual = `${JSON.stringify(resources, null, 2)}\n`;
      if (process.env.UPDATE_GOLDEN) fs.writeFileSync(file, actual);
      expect(fs.existsSync(file), `${file} is missing; run with UPDATE_GOLDEN=1 to create it`).toBe(true);
      expect(actual).toBe(fs.readFileSync(file, 'utf8'));
    });
  }
});
