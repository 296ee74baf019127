// Only Node's own modules load before the command line is checked, so a bad flag is answered at
// once: the Pilot, @mizzen/runtime (OpenTelemetry's SDK), the Kubernetes client and the config
// parsers take seconds to import. They are imported once the flags are valid, or when a flag's
// value needs one of them to be checked (a duration, a kubeconfig, a mesh config file).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { MeshConfig } from './networking/mesh-config.js';
import type { PilotOptions } from './pilot.js';

const USAGE = `usage: pilot [--host ADDR] [--xds-port 15010] [--http-port 15014] [--config-dir DIR]... [--store FILE] [--registrations FILE]
             [--credentials-dir DIR]   the local credential store gateways' credentialName come from
                                       (mizzen create secret tls fills it; default: credentials/ next to --store)
             [--registration-grace-ms MS] [--outbound-traffic-policy ALLOW_ANY|REGISTRY_ONLY]
             [--mesh-config FILE]   Istio MeshConfig YAML (extensionProviders, defaultProviders, enableTracing,
                                    defaultConfig.tracing.sampling, accessLogFile, trustDomain…)
             [--mesh-networks FILE]   Istio MeshNetworks YAML (networks: endpoints fromRegistry/fromCidr,
                                      gateways address|registryServiceName + port): split-horizon EDS
             [--root-cert FILE | --citadel-url URL]   the mesh root certificate proxies trust (sent as ROOTCA over SDS;
                                                      in Kubernetes mode also every namespace's istio-ca-root-cert)
             [--root-cert-refresh 10s]   how often it is re-read (a rotated root reaches proxies within this)
  Kubernetes mode:
             [--kubernetes | --kubeconfig FILE] [--system-namespace istio-system]
             [--leader-elect-lease-duration 15s]   how long the istio-leader Lease holds unrenewed: a
                                                   replica that dies without releasing it is replaced after
                                                   this (renewal deadline 2/3 of it, retries every 2/15)
  Webhooks (HTTPS /inject and /validate):
             [--webhook-port 15017 --webhook-cert FILE --webhook-key FILE]
             [--proxy-image IMAGE] [--image-pull-policy IfNotPresent] [--discovery-address istiod.istio-system.svc:15010]
             [--ca-address istio-citadel.istio-system.svc:8060]`;

function fail(message: string): never {
  process.stderr.write(`pilot: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function port(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    fail(`${flag} must be a port number (0-65535), got "${value}"`);
  return n;
}

async function main(): Promise<void> {
  let values: Record<string, string | string[] | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        host: { type: 'string' },
        'xds-port': { type: 'string' },
        'http-port': { type: 'string' },
        'config-dir': { type: 'string', multiple: true },
        store: { type: 'string' },
        'credentials-dir': { type: 'string' },
        registrations: { type: 'string' },
        'registration-grace-ms': { type: 'string' },
        'outbound-traffic-policy': { type: 'string' },
        'mesh-config': { type: 'string' },
        'mesh-networks': { type: 'string' },
        'log-level': { type: 'string' },
        kubernetes: { type: 'boolean' },
        kubeconfig: { type: 'string' },
        'system-namespace': { type: 'string' },
        'leader-elect-lease-duration': { type: 'string' },
        'root-cert': { type: 'string' },
        'citadel-url': { type: 'string' },
        'root-cert-refresh': { type: 'string' },
        'webhook-port': { type: 'string' },
        'webhook-cert': { type: 'string' },
        'webhook-key': { type: 'string' },
        'proxy-image': { type: 'string' },
        'image-pull-policy': { type: 'string' },
        'discovery-address': { type: 'string' },
        'ca-address': { type: 'string' },
        help: { type: 'boolean' },
      },
      strict: true,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const policy = (values['outbound-traffic-policy'] as string | undefined) ?? 'ALLOW_ANY';
  if (policy !== 'ALLOW_ANY' && policy !== 'REGISTRY_ONLY') {
    fail(`--outbound-traffic-policy must be ALLOW_ANY or REGISTRY_ONLY, got "${policy}"`);
  }
  const grace = values['registration-grace-ms'] as string | undefined;
  if (grace !== undefined && !/^\d+$/.test(grace))
    fail(`--registration-grace-ms must be a number of milliseconds`);
  const str = (k: string) => values[k] as string | undefined;
  const kubernetes = await kubernetesOptions(values.kubernetes === true, str('kubeconfig'), str);
  const webhook = webhookOptions(str);
  const xdsPort = port(str('xds-port'), '--xds-port', 15010);
  const httpPort = port(str('http-port'), '--http-port', 15014);
  const mesh: Partial<MeshConfig> = {
    ...(await meshFile(str('mesh-config'))),
    ...(await meshNetworksFile(str('mesh-networks'))),
    ...(values['outbound-traffic-policy'] !== undefined ? { outboundTrafficPolicy: policy } : {}),
  };
  const rootCert = await rootCertOption(str);
  // Every flag is valid: now the heavy modules.
  const [{ createLogger, installLifecycle, onShutdown, startComponentTracing }, { Pilot }] =
    await Promise.all([import('@mizzen/runtime'), import('./pilot.js')]);
  const logger = createLogger('pilot', {
    level: (values['log-level'] as 'info' | undefined) ?? undefined,
  });
  installLifecycle(logger);
  startComponentTracing('pilot', logger);
  const storeFile = path.resolve(
    (values.store as string | undefined) ?? path.join(os.homedir(), '.mizzen', 'pilot', 'store.json'),
  );
  const pilot = new Pilot({
    logger,
    host: (values.host as string | undefined) ?? '0.0.0.0',
    xdsPort,
    httpPort,
    configDirs: ((values['config-dir'] as string[] | undefined) ?? []).map((d) => path.resolve(d)),
    storeFile,
    registrationsFile: path.resolve(
      (values.registrations as string | undefined) ??
        path.join(path.dirname(storeFile), 'registrations.json'),
    ),
    registrationGraceMs: grace === undefined ? undefined : Number(grace),
    ...(str('credentials-dir') !== undefined
      ? { credentialsDir: path.resolve(str('credentials-dir')!) }
      : {}),
    mesh,
    ...rootCert,
    ...(kubernetes ? { kubernetes } : {}),
    ...(webhook ? { webhook } : {}),
  });
  onShutdown(() => pilot.stop());
  try {
    await pilot.start();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    logger.fatal({ err: e.message }, 'pilot failed to start');
    process.stderr.write(
      `pilot: ${e.code === 'EADDRINUSE' ? `port already in use (${e.message})` : e.message}\n`,
    );
    process.exit(1);
  }
}

/** Reads and parses a file a flag names; one clear line and exit code 2 when it cannot be read or parsed. */
function flagFile<T>(flag: string, file: string, parse: (text: string) => T): T {
  let text: string;
  try {
    text = fs.readFileSync(path.resolve(file), 'utf8');
  } catch (err) {
    fail(`cannot read ${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return parse(text);
  } catch (err) {
    fail(`${flag} ${file}: ${(err as Error).message}`);
  }
}

/** `--mesh-config FILE`: Istio's MeshConfig YAML, as the `mesh` key of the istio ConfigMap holds it. */
async function meshFile(file: string | undefined): Promise<Partial<MeshConfig>> {
  if (file === undefined) return {};
  const [{ parseMeshConfig }, { DEFAULT_MESH_CONFIG }] = await Promise.all([
    import('./kube/mesh-config.js'),
    import('./networking/mesh-config.js'),
  ]);
  return flagFile('--mesh-config', file, (text) => parseMeshConfig(text, DEFAULT_MESH_CONFIG));
}

/** `--mesh-networks FILE`: Istio's MeshNetworks YAML (pilot-discovery's `--meshNetworks`). */
async function meshNetworksFile(file: string | undefined): Promise<Partial<MeshConfig>> {
  if (file === undefined) return {};
  const { parseMeshNetworks } = await import('./networking/mesh-networks.js');
  return flagFile('--mesh-networks', file, (text) => ({ meshNetworks: parseMeshNetworks(text) }));
}

/** A duration flag's value in milliseconds (`15s`, `500ms`), as Istio spells durations. */
async function durationFlag(flag: string, value: string): Promise<number> {
  const { parseDuration } = await import('@mizzen/api');
  try {
    return parseDuration(value);
  } catch (err) {
    fail(`${flag}: ${(err as Error).message}`);
  }
}

async function kubernetesOptions(
  inCluster: boolean,
  kubeconfig: string | undefined,
  str: (k: string) => string | undefined,
): Promise<PilotOptions['kubernetes']> {
  if (!inCluster && kubeconfig === undefined) {
    for (const flag of ['system-namespace', 'leader-elect-lease-duration'])
      if (str(flag) !== undefined) fail(`--${flag} needs --kubernetes or --kubeconfig`);
    return undefined;
  }
  const lease = await leaseTimings(str('leader-elect-lease-duration'));
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kubeConfig = new KubeConfig();
  try {
    // --kubernetes: in a pod the service account's token and CA, elsewhere $KUBECONFIG or ~/.kube/config.
    if (kubeconfig !== undefined) kubeConfig.loadFromFile(path.resolve(kubeconfig));
    else kubeConfig.loadFromDefault();
  } catch (err) {
    fail(
      `cannot load the Kubernetes config${kubeconfig ? ` from ${kubeconfig}` : ''}: ${(err as Error).message}`,
    );
  }
  if (!kubeConfig.getCurrentCluster()) fail('the Kubernetes config names no current cluster');
  return {
    kubeConfig,
    systemNamespace: str('system-namespace') ?? process.env.POD_NAMESPACE ?? 'istio-system',
    ...(process.env.POD_NAME ? { identity: `${process.env.POD_NAME}_${process.pid}` } : {}),
    ...lease,
  };
}

/**
 * `--leader-elect-lease-duration`: the Lease's duration, with client-go's
 * proportions for the rest (15s → renew within 10s, try every 2s).
 */
async function leaseTimings(
  value: string | undefined,
): Promise<{ leaseDurationMs: number; renewDeadlineMs: number; retryPeriodMs: number } | undefined> {
  if (value === undefined) return undefined;
  const ms = await durationFlag('--leader-elect-lease-duration', value);
  if (ms < 1000 || ms % 1000 !== 0)
    fail(
      `--leader-elect-lease-duration must be whole seconds, at least 1s (a Lease counts seconds), got "${value}"`,
    );
  return {
    leaseDurationMs: ms,
    renewDeadlineMs: Math.round((ms * 2) / 3),
    retryPeriodMs: Math.round((ms * 2) / 15),
  };
}

/** `--root-cert FILE` or `--citadel-url URL`: where the mesh root certificate comes from, and how often it is read. */
async function rootCertOption(
  str: (k: string) => string | undefined,
): Promise<Pick<PilotOptions, 'rootCert' | 'rootCertRefreshMs'>> {
  const file = str('root-cert');
  const citadel = str('citadel-url');
  const refresh = str('root-cert-refresh');
  if (file !== undefined && citadel !== undefined) fail('give --root-cert or --citadel-url, not both');
  let rootCertRefreshMs: number | undefined;
  if (refresh !== undefined) {
    if (file === undefined && citadel === undefined)
      fail('--root-cert-refresh needs --root-cert or --citadel-url');
    rootCertRefreshMs = await durationFlag('--root-cert-refresh', refresh);
    if (rootCertRefreshMs < 100) fail(`--root-cert-refresh must be at least 100ms, got "${refresh}"`);
  }
  const every = rootCertRefreshMs !== undefined ? { rootCertRefreshMs } : {};
  if (file !== undefined) return { rootCert: { file: path.resolve(file) }, ...every };
  if (citadel === undefined) return {};
  let url: URL;
  try {
    url = new URL('/root-cert.pem', citadel);
  } catch {
    fail(`--citadel-url must be a URL such as http://127.0.0.1:15016, got "${citadel}"`);
  }
  return { rootCert: { url: url.toString() }, ...every };
}

function webhookOptions(str: (k: string) => string | undefined): PilotOptions['webhook'] {
  const cert = str('webhook-cert');
  const key = str('webhook-key');
  if (cert === undefined && key === undefined) {
    for (const f of ['webhook-port', 'proxy-image', 'image-pull-policy', 'discovery-address', 'ca-address'])
      if (str(f) !== undefined) fail(`--${f} needs --webhook-cert and --webhook-key`);
    return undefined;
  }
  if (cert === undefined || key === undefined) fail('--webhook-cert and --webhook-key go together');
  for (const f of [cert, key]) if (!fs.existsSync(f)) fail(`webhook certificate file ${f} does not exist`);
  const pull = str('image-pull-policy') ?? 'IfNotPresent';
  if (pull !== 'Always' && pull !== 'IfNotPresent' && pull !== 'Never')
    fail(`--image-pull-policy must be Always, IfNotPresent or Never, got "${pull}"`);
  return {
    port: port(str('webhook-port'), '--webhook-port', 15017),
    certFile: path.resolve(cert),
    keyFile: path.resolve(key),
    injection: {
      proxyImage: str('proxy-image') ?? 'mizzen/sidecar-agent:0.1.0',
      imagePullPolicy: pull,
      discoveryAddress: str('discovery-address') ?? 'istiod.istio-system.svc:15010',
      caAddress: str('ca-address') ?? 'istio-citadel.istio-system.svc:8060',
    },
  };
}

void main();
