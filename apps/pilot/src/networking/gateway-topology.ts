import type { ProxyInfo } from '../model/proxy.js';
import type { MeshConfig } from './mesh-config.js';

/**
 * Istio's ProxyConfig.gatewayTopology: what sits in front of a gateway. Set
 * mesh-wide (`defaultConfig.gatewayTopology` in mesh config) or per gateway
 * (the `proxy.istio.io/config` annotation, which reaches pilot as the node's
 * PROXY_CONFIG metadata; its fields win).
 */
export interface GatewayTopology {
  /** Proxies in front of the gateway whose X-Forwarded-For entries are trusted (xff_num_trusted_hops). */
  numTrustedProxies?: number;
  /** What the gateway does with x-forwarded-client-cert (Istio's enum; default SANITIZE_SET). */
  forwardClientCertDetails?: string;
  /** Connections arrive with a PROXY protocol header (a load balancer's). */
  proxyProtocol?: boolean;
}

const XFCC_MODES = [
  'UNDEFINED',
  'SANITIZE',
  'FORWARD_ONLY',
  'APPEND_FORWARD',
  'SANITIZE_SET',
  'ALWAYS_FORWARD_ONLY',
];

/** Reads a gatewayTopology mapping; throws one sentence naming the field when a value is wrong. */
export function parseGatewayTopology(value: unknown, where: string): GatewayTopology {
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new Error(`${where} must be a mapping`);
  const v = value as Record<string, unknown>;
  const out: GatewayTopology = {};
  if (v.numTrustedProxies !== undefined) {
    const n = v.numTrustedProxies;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 0)
      throw new Error(`${where}.numTrustedProxies must be a non-negative integer, got ${JSON.stringify(n)}`);
    out.numTrustedProxies = n;
  }
  if (v.forwardClientCertDetails !== undefined) {
    const m = v.forwardClientCertDetails;
    if (typeof m !== 'string' || !XFCC_MODES.includes(m))
      throw new Error(`${where}.forwardClientCertDetails must be one of ${XFCC_MODES.join(', ')}`);
    out.forwardClientCertDetails = m;
  }
  if (v.proxyProtocol !== undefined && v.proxyProtocol !== null) {
    if (typeof v.proxyProtocol !== 'object' || Array.isArray(v.proxyProtocol))
      throw new Error(`${where}.proxyProtocol must be a mapping ({} turns it on)`);
    out.proxyProtocol = true;
  }
  return out;
}

/** The node's own ProxyConfig (Istio's PROXY_CONFIG metadata, JSON), if it carries a gatewayTopology. */
function nodeTopology(proxy: ProxyInfo): GatewayTopology {
  let config = proxy.metadata.PROXY_CONFIG;
  if (typeof config === 'string') {
    try {
      config = JSON.parse(config);
    } catch {
      return {};
    }
  }
  try {
    return parseGatewayTopology(
      (config as { gatewayTopology?: unknown } | undefined)?.gatewayTopology,
      'PROXY_CONFIG.gatewayTopology',
    );
  } catch {
    // A gateway sends its own metadata: a bad value there falls back to the mesh's, rather than failing its config.
    return {};
  }
}

/** The gateway topology in force for one gateway: its own settings over the mesh's. */
export function gatewayTopologyFor(mesh: MeshConfig, proxy: ProxyInfo): GatewayTopology {
  return { ...(mesh.gatewayTopology ?? {}), ...nodeTopology(proxy) };
}
