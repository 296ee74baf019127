import net from 'node:net';
import path from 'node:path';
import { type KeyType, parseKeyType } from '@mizzen/pki';
import type { CaptureMode } from '../listeners/listener-manager.js';
import type { WorkloadPortSpec } from './node.js';

/** A bad command-line value: the message names the flag and what was wrong. */
export class FlagError extends Error {}

export function parsePort(value: string | undefined, flag: string, fallback?: number): number {
  if (value === undefined) {
    if (fallback === undefined) throw new FlagError(`${flag} is required`);
    return fallback;
  }
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 65535)
    throw new FlagError(`${flag} must be a port number (1-65535), got "${value}"`);
  return n;
}

const LABEL_KEY =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const LABEL_VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

/** `app=reviews,version=v1` → labels, validated as Kubernetes labels. */
export function parseLabels(value: string | undefined, flag = '--labels'): Record<string, string> {
  const out: Record<string, string> = {};
  if (!value) return out;
  for (const pair of value.split(',').filter(Boolean)) {
    const eq = pair.indexOf('=');
    if (eq <= 0) throw new FlagError(`${flag}: "${pair}" is not key=value`);
    const key = pair.slice(0, eq).trim();
    const val = pair.slice(eq + 1).trim();
    if (!LABEL_KEY.test(key) || key.length > 316)
      throw new FlagError(`${flag}: "${key}" is not a valid label key`);
    if (!LABEL_VALUE.test(val) || val.length > 63)
      throw new FlagError(`${flag}: "${val}" is not a valid label value`);
    out[key] = val;
  }
  return out;
}

/** `name:servicePort:appPort:sidecarPort` (e.g. `http:9080:19080:15006`). */
export function parsePortSpec(value: string, flag = '--port'): WorkloadPortSpec {
  const parts = value.split(':');
  if (parts.length !== 4)
    throw new FlagError(`${flag} "${value}" must be name:servicePort:appPort:sidecarPort`);
  const [name, port, target, listen] = parts as [string, string, string, string];
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name))
    throw new FlagError(`${flag} "${value}": "${name}" is not a valid port name`);
  return {
    name,
    port: parsePort(port, `${flag} ${value} (service port)`),
    targetPort: parsePort(target, `${flag} ${value} (app port)`),
    listenPort: parsePort(listen, `${flag} ${value} (sidecar port)`),
  };
}

/** `80=8080,443=8443`: service port → port the gateway listens on. */
export function parsePortMap(value: string | undefined, flag = '--port-map'): Record<number, number> {
  const out: Record<number, number> = {};
  if (!value) return out;
  for (const pair of value.split(',').filter(Boolean)) {
    const [from, to, ...rest] = pair.split('=');
    if (rest.length || from === undefined || to === undefined)
      throw new FlagError(`${flag}: "${pair}" is not servicePort=listenPort`);
    out[parsePort(from, `${flag} ${pair}`)] = parsePort(to, `${flag} ${pair}`);
  }
  return out;
}

export function parseIp(value: string | undefined, flag = '--ip', fallback = '127.0.0.1'): string {
  const ip = value ?? fallback;
  if (!net.isIP(ip)) throw new FlagError(`${flag} must be an IP address, got "${ip}"`);
  return ip;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function parseName(value: string | undefined, flag: string, fallback?: string): string {
  const v = value ?? fallback;
  if (v === undefined) throw new FlagError(`${flag} is required`);
  if (!DNS_LABEL.test(v) || v.length > 63)
    throw new FlagError(`${flag} must be a DNS-1123 label (lowercase letters, digits, '-'), got "${v}"`);
  return v;
}

/** host:port of pilot's xDS server. */
export function parseAddress(value: string | undefined, flag: string): string {
  if (!value) throw new FlagError(`${flag} is required (host:port of pilot's xDS server)`);
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(value);
  if (!m) throw new FlagError(`${flag} must be host:port, got "${value}"`);
  parsePort(m[2], flag);
  return value;
}

/**
 * The workload key's type: `--cert-key-type` (`ecdsa` = ECDSA P-256, `rsa` =
 * RSA 2048, or an exact EC-P256, EC-P384, RSA-2048, RSA-3072, RSA-4096), else
 * Istio's agent environment — ECC_SIGNATURE_ALGORITHM (ECDSA, or RSA) with
 * ECC_CURVE (P256, P384) or WORKLOAD_RSA_KEY_SIZE (2048, 3072, 4096). ECDSA
 * P-256 when neither says (Istio's agent defaults to RSA; Mizzen to ECDSA).
 */
export function parseCertKeyType(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): KeyType {
  if (flag !== undefined) {
    const lower = flag.toLowerCase();
    if (lower === 'ecdsa') return 'EC-P256';
    if (lower === 'rsa') return 'RSA-2048';
    try {
      return parseKeyType(flag);
    } catch {
      throw new FlagError(
        `--cert-key-type must be ecdsa, rsa, EC-P256, EC-P384, RSA-2048, RSA-3072 or RSA-4096, got "${flag}"`,
      );
    }
  }
  const algorithm = env.ECC_SIGNATURE_ALGORITHM?.trim().toUpperCase() || 'ECDSA';
  if (algorithm === 'ECDSA') {
    const curve = env.ECC_CURVE?.trim().toUpperCase() || 'P256';
    if (curve === 'P256') return 'EC-P256';
    if (curve === 'P384') return 'EC-P384';
    throw new FlagError(`ECC_CURVE must be P256 or P384, got "${env.ECC_CURVE}"`);
  }
  if (algorithm === 'RSA') {
    const size = env.WORKLOAD_RSA_KEY_SIZE?.trim() || '2048';
    if (size === '2048' || size === '3072' || size === '4096') return `RSA-${size}`;
    throw new FlagError(
      `WORKLOAD_RSA_KEY_SIZE must be 2048, 3072 or 4096, got "${env.WORKLOAD_RSA_KEY_SIZE}"`,
    );
  }
  throw new FlagError(`ECC_SIGNATURE_ALGORITHM must be ECDSA or RSA, got "${env.ECC_SIGNATURE_ALGORITHM}"`);
}

/**
 * `--ca-address` / `--ca-token-file` / `--ca-root-cert` | `--ca-plaintext` /
 * `--trust-domain` / `--cert-ttl` / `--cert-key-type`: where the workload
 * certificate comes from. The CA is reached over TLS, verified with the roots
 * in `--ca-root-cert` (else Istio's CA_ROOT_CA); plaintext only when asked.
 */
export function parseCertificateFlags(
  values: Record<string, unknown>,
  identity: { namespace: string; serviceAccount: string },
  env: NodeJS.ProcessEnv = process.env,
):
  | {
      caAddress: string;
      tokenFile: string;
      trustDomain: string;
      namespace: string;
      serviceAccount: string;
      ttlSeconds?: number;
      keyType: KeyType;
      caRootCertFile?: string;
    }
  | undefined {
  const address = values['ca-address'] as string | undefined;
  const tokenFile = values['ca-token-file'] as string | undefined;
  if (address === undefined && tokenFile === undefined) {
    for (const flag of ['ca-root-cert', 'ca-plaintext'])
      if (values[flag] !== undefined) throw new FlagError(`--${flag} needs --ca-address`);
    return undefined;
  }
  if (!address || !tokenFile) throw new FlagError('--ca-address and --ca-token-file go together');
  parseAddress(address, '--ca-address');
  const trustDomain = (values['trust-domain'] as string | undefined) ?? 'cluster.local';
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(trustDomain))
    throw new FlagError(`--trust-domain "${trustDomain}" is not a valid trust domain`);
  const ttl = values['cert-ttl'] as string | undefined;
  let ttlSeconds: number | undefined;
  if (ttl !== undefined) {
    const m = /^(\d+)(s|m|h)$/.exec(ttl);
    if (!m) throw new FlagError(`--cert-ttl must be like 30s, 10m or 24h, got "${ttl}"`);
    ttlSeconds = Number(m[1]) * (m[2] === 'h' ? 3600 : m[2] === 'm' ? 60 : 1);
  }
  const keyType = parseCertKeyType(values['cert-key-type'] as string | undefined, env);
  const plaintext = values['ca-plaintext'] === true;
  const rootFlag = values['ca-root-cert'] as string | undefined;
  if (plaintext && rootFlag !== undefined)
    throw new FlagError('--ca-root-cert and --ca-plaintext exclude each other');
  const rootFile = plaintext ? undefined : (rootFlag ?? (env.CA_ROOT_CA || undefined));
  if (!plaintext && rootFile === undefined)
    throw new FlagError(
      "--ca-address needs --ca-root-cert FILE (the root the CA's certificate chains to; or CA_ROOT_CA), or --ca-plaintext for local debugging",
    );
  return {
    caAddress: address,
    tokenFile,
    trustDomain,
    ...identity,
    ttlSeconds,
    keyType,
    ...(rootFile !== undefined ? { caRootCertFile: path.resolve(rootFile) } : {}),
  };
}

/** The certificate flags both sidecar and gateway accept. */
export const CERTIFICATE_FLAGS = {
  'ca-address': { type: 'string' },
  'ca-token-file': { type: 'string' },
  'trust-domain': { type: 'string' },
  'cert-ttl': { type: 'string' },
  'cert-key-type': { type: 'string' },
  'ca-root-cert': { type: 'string' },
  'ca-plaintext': { type: 'boolean' },
} as const;

/**
 * How applications' traffic reaches the proxy: `http-proxy` (local mode: apps
 * use HTTP_PROXY) or `iptables` (the pod's nat table redirects every TCP
 * connection, and the proxy recovers each one's original destination).
 */
export function parseCaptureMode(value: string | undefined, flag = '--capture-mode'): CaptureMode {
  const mode = value ?? 'http-proxy';
  if (mode !== 'http-proxy' && mode !== 'iptables')
    throw new FlagError(`${flag} must be http-proxy or iptables, got "${mode}"`);
  return mode;
}

/** `--locality region/zone/subzone`: where the proxy runs (Envoy's Node.locality, Istio's locality). */
export const LOCALITY_FLAG = { locality: { type: 'string' } } as const;

/** `--network NAME`: the network the proxy runs on (Istio's ISTIO_META_NETWORK). */
export const NETWORK_FLAG = { network: { type: 'string' } } as const;

const NETWORK_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/**
 * The proxy's network: `--network`, else ISTIO_META_NETWORK from the
 * environment (what Istio's injector sets from the pod's
 * topology.istio.io/network label); undefined when neither says.
 */
export function parseNetwork(
  value: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string | undefined {
  const [network, flag] =
    value !== undefined ? [value, '--network'] : [env.ISTIO_META_NETWORK || undefined, 'ISTIO_META_NETWORK'];
  if (network === undefined) return undefined;
  if (!NETWORK_NAME.test(network))
    throw new FlagError(
      `${flag} must be a network name (a label value: letters, digits, '-', '_', '.', at most 63), got "${network}"`,
    );
  return network;
}

const LOCALITY_PART = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

/** `region[/zone[/subzone]]` as Envoy's Node.locality; undefined when not given. */
export function parseLocality(
  value: string | undefined,
  flag = '--locality',
): { region: string; zone?: string; sub_zone?: string } | undefined {
  if (value === undefined) return undefined;
  const parts = value.split('/');
  if (parts.length > 3 || parts.some((p) => !LOCALITY_PART.test(p)))
    throw new FlagError(
      `${flag} must be region[/zone[/subzone]] (letters, digits, '-', '_', '.'), got "${value}"`,
    );
  const [region, zone, subZone] = parts as [string, string?, string?];
  return { region, ...(zone ? { zone } : {}), ...(subZone ? { sub_zone: subZone } : {}) };
}
