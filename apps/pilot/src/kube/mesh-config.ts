import {
  checkResource,
  exportToProblems,
  type LocalityLoadBalancerSetting,
  type TCPKeepalive,
} from '@mizzen/api';
import { parse } from 'yaml';
import { parseGatewayTopology } from '../networking/gateway-topology.js';
import type { AuthzExtensionProvider, MeshConfig } from '../networking/mesh-config.js';
import { parseMeshTelemetry } from '../networking/telemetry.js';

/**
 * The `mesh` key of the `istio` ConfigMap (Istio's MeshConfig, YAML) as the
 * fields pilot acts on; what it does not set keeps `base`. Throws with a
 * sentence naming the field when a value has the wrong type.
 */
export function parseMeshConfig(text: string | undefined, base: MeshConfig): MeshConfig {
  if (!text || text.trim() === '') return { ...base };
  const doc = parse(text) as Record<string, unknown> | null;
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) {
    throw new Error('the "mesh" key of ConfigMap istio must be a YAML mapping');
  }
  const mesh: MeshConfig = { ...base };
  const str = (field: string): string | undefined => {
    const v = doc[field];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string') throw new Error(`mesh config: ${field} must be a string`);
    return v;
  };
  mesh.trustDomain = str('trustDomain') ?? mesh.trustDomain;
  mesh.rootNamespace = str('rootNamespace') ?? mesh.rootNamespace;
  mesh.connectTimeout = str('connectTimeout') ?? mesh.connectTimeout;
  const h2 = str('h2UpgradePolicy');
  if (h2 !== undefined) {
    if (h2 !== 'UPGRADE' && h2 !== 'DO_NOT_UPGRADE')
      throw new Error(
        `mesh config: h2UpgradePolicy must be UPGRADE or DO_NOT_UPGRADE, got ${JSON.stringify(h2)}`,
      );
    mesh.h2UpgradePolicy = h2;
  }
  const otp = doc.outboundTrafficPolicy as { mode?: unknown } | undefined;
  if (otp !== undefined && otp !== null) {
    if (otp.mode !== undefined && otp.mode !== 'ALLOW_ANY' && otp.mode !== 'REGISTRY_ONLY') {
      throw new Error(
        `mesh config: outboundTrafficPolicy.mode must be ALLOW_ANY or REGISTRY_ONLY, got ${JSON.stringify(otp.mode)}`,
      );
    }
    if (otp.mode) mesh.outboundTrafficPolicy = otp.mode;
  }
  for (const [field, allowNone] of [
    ['defaultServiceExportTo', true],
    ['defaultVirtualServiceExportTo', false],
    ['defaultDestinationRuleExportTo', false],
  ] as const) {
    const list = exportToDefault(doc[field], field, allowNone);
    if (list) mesh[field] = list;
  }
  mesh.telemetry = parseMeshTelemetry(doc, base.telemetry);
  const defaults = doc.defaultConfig as Record<string, unknown> | undefined;
  if (defaults?.gatewayTopology !== undefined)
    mesh.gatewayTopology = parseGatewayTopology(
      defaults.gatewayTopology,
      'mesh config: defaultConfig.gatewayTopology',
    );
  if (doc.localityLbSetting !== undefined && doc.localityLbSetting !== null) {
    // As Istio's ValidateMeshConfig: checked as if outlier detection were on.
    checkAsInDestinationRule('localityLbSetting', {
      loadBalancer: { localityLbSetting: doc.localityLbSetting },
      outlierDetection: {},
    });
    mesh.localityLbSetting = doc.localityLbSetting as LocalityLoadBalancerSetting;
  }
  if (doc.tcpKeepalive !== undefined && doc.tcpKeepalive !== null) {
    checkAsInDestinationRule('tcpKeepalive', { connectionPool: { tcp: { tcpKeepalive: doc.tcpKeepalive } } });
    mesh.tcpKeepalive = doc.tcpKeepalive as TCPKeepalive;
  }
  if (doc.extensionProviders !== undefined) {
    if (!Array.isArray(doc.extensionProviders))
      throw new Error('mesh config: extensionProviders must be a list');
    // Authorization reads the external authorizers from the same list (libs/policy validates them).
    mesh.authorizers = (doc.extensionProviders as Record<string, unknown>[]).filter(
      (p) => p && typeof p === 'object' && ('envoyExtAuthzHttp' in p || 'envoyExtAuthzGrpc' in p),
    ) as AuthzExtensionProvider[];
  }
  return mesh;
}

/** A mesh-wide exportTo default (`.`, `*`, namespaces; `~` for services), checked as Istio checks exportTo. */
function exportToDefault(value: unknown, field: string, allowNone: boolean): string[] | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string'))
    throw new Error(`mesh config: ${field} must be a list of namespaces, "." or "*"`);
  // "." means the resource's own namespace; check it against a namespace no resource has.
  const problems = exportToProblems(value as string[], '', allowNone);
  if (problems.length) throw new Error(`mesh config: ${field}: ${problems.join('; ')}`);
  return value as string[];
}

/**
 * A MeshConfig field that has the shape of a DestinationRule's
 * (`localityLbSetting`, `tcpKeepalive`), checked by the DestinationRule's
 * rules as Istio's ValidateMeshConfig does, placed in a `trafficPolicy`;
 * the error names the mesh config field.
 */
function checkAsInDestinationRule(field: string, trafficPolicy: Record<string, unknown>): void {
  const check = checkResource({
    apiVersion: 'networking.istio.io/v1',
    kind: 'DestinationRule',
    metadata: { name: 'mesh-config', namespace: 'istio-system' },
    spec: { host: 'mesh', trafficPolicy },
  });
  const error = check.issues.find((i) => i.severity === 'error');
  if (error) {
    const at = error.path
      .slice(error.path.indexOf(field))
      .join('.')
      .replace(/\.(\d+)/g, '[$1]');
    throw new Error(`mesh config: ${at || field}: ${error.message}`);
  }
}
