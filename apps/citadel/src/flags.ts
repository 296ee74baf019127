import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { type KeyType, parseKeyType, validateTrustDomain } from '@mizzen/pki';
import { isLogLevel } from '@mizzen/runtime';
import { DEFAULT_SERVING_NAMES } from './serving-cert.js';

/** A bad command-line value: the message names the flag and what was wrong. */
export class FlagError extends Error {}

export const USAGE = `usage: citadel [--host 0.0.0.0] [--grpc-port 8060] [--http-port 15016] [--ca-dir DIR] [--trust-domain cluster.local]
               [--token-key FILE | --kube-api URL [--kube-token-file FILE] [--kube-ca-file FILE]]
               [--default-workload-cert-ttl 24h] [--max-workload-cert-ttl 2160h] [--self-signed-root-ttl 87600h]
               [--ca-key-type EC-P256|EC-P384|RSA-2048|RSA-3072|RSA-4096] [--log-level info]
               [--grpc-tls-names NAME,…] [--grpc-cert-ttl 24h] | [--grpc-plaintext]

The gRPC CA port serves TLS with a certificate citadel issues itself from its CA for
--grpc-tls-names (DNS names and IP addresses; by default its Service names in
istio-system, localhost, 127.0.0.1 and ::1), renewed at half of --grpc-cert-ttl.
--grpc-plaintext serves it without TLS, for local debugging only: service-account
tokens then cross the network in clear.`;

export type AuthConfig =
  | { mode: 'local'; tokenKeyFile: string }
  | { mode: 'kubernetes'; apiUrl: string; tokenFile: string; caFile?: string };

export interface CitadelConfig {
  host: string;
  grpcPort: number;
  httpPort: number;
  caDir: string;
  trustDomain: string;
  auth: AuthConfig;
  defaultTtlSeconds: number;
  maxTtlSeconds: number;
  selfSignedRootTtlSeconds: number;
  caKeyType: KeyType;
  logLevel?: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  /** TLS on the gRPC port (absent with --grpc-plaintext). */
  grpcTls?: { names: string[]; ttlSeconds: number };
}

const IN_CLUSTER = '/var/run/secrets/kubernetes.io/serviceaccount';
const UNITS: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600, d: 86_400 };

/** Go-style durations as Istio's flags take them (`24h`, `2160h0m0s`, `90m`), plus days (`90d`); whole seconds. */
export function parseDuration(value: string, flag: string): number {
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d)/gy;
  let total = 0;
  let matched = 0;
  for (let m = re.exec(value); m; m = re.exec(value)) {
    total += Number(m[1]) * UNITS[m[2]!]!;
    matched = re.lastIndex;
  }
  if (!value || matched !== value.length) {
    throw new FlagError(`${flag} must be a duration such as 24h, 90m or 2160h0m0s, got "${value}"`);
  }
  const seconds = Math.floor(total);
  if (seconds < 1) throw new FlagError(`${flag} must be at least 1s, got "${value}"`);
  return seconds;
}

function port(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535)
    throw new FlagError(`${flag} must be a port number (0-65535), got "${value}"`);
  return n;
}

function url(value: string, flag: string): string {
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new FlagError(
      `${flag} must be an http(s) URL such as https://kubernetes.default.svc, got "${value}"`,
    );
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') {
    throw new FlagError(`${flag} must be an http(s) URL, got "${value}"`);
  }
  return value.replace(/\/+$/, '');
}

const DNS_NAME = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** `--grpc-tls-names`, `--grpc-cert-ttl`, `--grpc-plaintext`: TLS on the gRPC port unless plaintext is asked for. */
function grpcTls(values: Record<string, string | boolean | undefined>): Pick<CitadelConfig, 'grpcTls'> {
  const names = values['grpc-tls-names'] as string | undefined;
  const ttl = values['grpc-cert-ttl'] as string | undefined;
  if (values['grpc-plaintext']) {
    for (const [flag, v] of [
      ['--grpc-tls-names', names],
      ['--grpc-cert-ttl', ttl],
    ] as const)
      if (v !== undefined) throw new FlagError(`${flag} makes no sense with --grpc-plaintext`);
    return {};
  }
  const list = names === undefined ? [...DEFAULT_SERVING_NAMES] : names.split(',').map((n) => n.trim());
  if (list.length === 0 || list.some((n) => n === '')) {
    throw new FlagError(
      `--grpc-tls-names must be a comma-separated list of DNS names and IP addresses, got "${names}"`,
    );
  }
  for (const n of list) {
    if (net.isIP(n) === 0 && !(DNS_NAME.test(n) && n.length <= 253))
      throw new FlagError(`--grpc-tls-names: "${n}" is neither a DNS name nor an IP address`);
  }
  return { grpcTls: { names: list, ttlSeconds: parseDuration(ttl ?? '24h', '--grpc-cert-ttl') } };
}

/** The default home for citadel's files: $MIZZEN_HOME/citadel or ~/.mizzen/citadel. */
export function defaultCaDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.MIZZEN_HOME || path.join(os.homedir(), '.mizzen'), 'citadel');
}

/** Parses citadel's command line; throws FlagError with one sentence naming the flag. */
export function parseCitadelFlags(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): CitadelConfig | 'help' {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        host: { type: 'string' },
        'grpc-port': { type: 'string' },
        'http-port': { type: 'string' },
        'ca-dir': { type: 'string' },
        'trust-domain': { type: 'string' },
        'token-key': { type: 'string' },
        'kube-api': { type: 'string' },
        'kube-token-file': { type: 'string' },
        'kube-ca-file': { type: 'string' },
        'default-workload-cert-ttl': { type: 'string' },
        'max-workload-cert-ttl': { type: 'string' },
        'self-signed-root-ttl': { type: 'string' },
        'ca-key-type': { type: 'string' },
        'log-level': { type: 'string' },
        'grpc-tls-names': { type: 'string' },
        'grpc-cert-ttl': { type: 'string' },
        'grpc-plaintext': { type: 'boolean' },
        help: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new FlagError((err as Error).message);
  }
  if (values.help) return 'help';
  const str = (name: string) => values[name] as string | undefined;

  const host = str('host') ?? '0.0.0.0';
  if (!host) throw new FlagError('--host must not be empty');
  const trustDomain = str('trust-domain') ?? 'cluster.local';
  try {
    validateTrustDomain(trustDomain);
  } catch (err) {
    throw new FlagError(`--trust-domain: ${(err as Error).message}`);
  }
  const caDir = path.resolve(str('ca-dir') ?? defaultCaDir(env));

  let auth: AuthConfig;
  const kubeApi = str('kube-api');
  if (kubeApi !== undefined) {
    if (str('token-key') !== undefined) {
      throw new FlagError('use either --token-key (local mode) or --kube-api (Kubernetes mode), not both');
    }
    const caFile = str('kube-ca-file');
    auth = {
      mode: 'kubernetes',
      apiUrl: url(kubeApi, '--kube-api'),
      tokenFile: path.resolve(str('kube-token-file') ?? `${IN_CLUSTER}/token`),
      ...(caFile ? { caFile: path.resolve(caFile) } : {}),
    };
  } else {
    for (const flag of ['kube-token-file', 'kube-ca-file']) {
      if (str(flag) !== undefined) throw new FlagError(`--${flag} needs --kube-api`);
    }
    auth = {
      mode: 'local',
      tokenKeyFile: path.resolve(str('token-key') ?? path.join(caDir, 'workload-token.key')),
    };
  }

  const defaultTtlSeconds = parseDuration(
    str('default-workload-cert-ttl') ?? '24h',
    '--default-workload-cert-ttl',
  );
  const maxTtlSeconds = parseDuration(str('max-workload-cert-ttl') ?? '2160h', '--max-workload-cert-ttl');
  if (defaultTtlSeconds > maxTtlSeconds) {
    throw new FlagError('--default-workload-cert-ttl must not exceed --max-workload-cert-ttl');
  }
  const selfSignedRootTtlSeconds = parseDuration(
    str('self-signed-root-ttl') ?? '87600h',
    '--self-signed-root-ttl',
  );

  let caKeyType: KeyType;
  try {
    caKeyType = parseKeyType(str('ca-key-type') ?? 'EC-P256');
  } catch (err) {
    throw new FlagError(`--ca-key-type: ${(err as Error).message}`);
  }
  const logLevel = str('log-level');
  if (logLevel !== undefined && !isLogLevel(logLevel)) {
    throw new FlagError(
      `--log-level must be one of trace, debug, info, warn, error, fatal, silent, got "${logLevel}"`,
    );
  }

  return {
    host,
    ...grpcTls(values),
    grpcPort: port(str('grpc-port'), '--grpc-port', 8060),
    httpPort: port(str('http-port'), '--http-port', 15016),
    caDir,
    trustDomain,
    auth,
    defaultTtlSeconds,
    maxTtlSeconds,
    selfSignedRootTtlSeconds,
    caKeyType,
    ...(logLevel ? { logLevel: logLevel as CitadelConfig['logLevel'] } : {}),
  };
}
