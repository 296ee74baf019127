import net from 'node:net';
import { APP_PROBERS_ENV, AppProber, AppProberError, type AppProberOptions } from '@mizzen/inject';
import { loadOriginalDestinationAddon, OriginalDestinationError } from '@mizzen/original-dst';
import {
  CERTIFICATE_FLAGS,
  FlagError,
  LOCALITY_FLAG,
  NETWORK_FLAG,
  type ParsedFlags,
  parseAddress,
  parseCaptureMode,
  parseCertificateFlags,
  parseIp,
  parseLabels,
  parseLocality,
  parseName,
  parseNetwork,
  parsePort,
  parsePortSpec,
  rateLimitsFromEnvironment,
  runProxyApp,
  sidecarNode,
} from '@mizzen/proxy';
import type { Logger } from '@mizzen/runtime';
import {
  APP_METRICS_FLAG,
  parseTelemetryFlags,
  startProxyTelemetry,
  TELEMETRY_FLAGS,
} from '@mizzen/telemetry';
import { AGENT_FLAGS, USAGE } from './flags.js';

function build(values: ParsedFlags, logger: Logger) {
  const s = (k: string) => values[k] as string | undefined;
  const ports = ((values.port as string[] | undefined) ?? []).map((p) => parsePortSpec(p));
  const listenPorts = new Set<number>();
  for (const p of ports) {
    if (listenPorts.has(p.listenPort))
      throw new FlagError(`--port: sidecar port ${p.listenPort} is used twice`);
    listenPorts.add(p.listenPort);
  }
  const ip = parseIp(s('ip'));
  const adminPort = parsePort(s('admin-port'), '--admin-port', 15000);
  const healthPort = parsePort(s('health-port'), '--health-port', 15021);
  const captureMode = parseCaptureMode(s('capture-mode'));
  if (captureMode === 'iptables') checkOriginalDestination(logger);
  const outboundPort =
    s('outbound-port') === undefined
      ? captureMode === 'iptables'
        ? 15001
        : undefined
      : parsePort(s('outbound-port'), '--outbound-port');
  const namespace = parseName(s('namespace'), '--namespace', 'default');
  const serviceAccount = parseName(s('service-account'), '--service-account', 'default');
  const certificates = parseCertificateFlags(values, { namespace, serviceAccount });
  const telemetryFlags = parseTelemetryFlags(values);
  const workloadName = s('workload-name') ?? process.env.ISTIO_META_WORKLOAD_NAME;
  const node = sidecarNode({
    workload: parseName(s('workload'), '--workload'),
    ...(workloadName ? { workloadName: parseName(workloadName, '--workload-name') } : {}),
    namespace,
    serviceAccount,
    mtls: certificates !== undefined,
    service: s('service') === undefined ? undefined : parseName(s('service'), '--service'),
    labels: parseLabels(s('labels')),
    ip,
    ports,
    outboundPort,
    adminPort,
    healthPort,
    statsPort: telemetryFlags.statsPort,
    captureMode,
    locality: parseLocality(s('locality')),
    network: parseNetwork(s('network')),
  });
  // As Istio's agent: in a pod (iptables capture), probes go to the pod IP from 127.0.0.6, which the rules let through.
  const prober = appProber(
    captureMode === 'iptables' ? { host: ip, localAddress: net.isIPv6(ip) ? '::6' : '127.0.0.6' } : {},
  );
  const telemetry = startProxyTelemetry({
    component: 'sidecar-agent',
    node,
    logger,
    host: ip,
    flags: telemetryFlags,
    ...(prober.paths().length ? { appProbe: (path: string) => prober.probe(path) } : {}),
  });
  return {
    node,
    pilot: parseAddress(s('pilot'), '--pilot'),
    adminHost: ip,
    adminPort,
    healthPort,
    captureMode,
    certificates,
    observer: telemetry.observer,
    rateLimits: rateLimitsFromEnvironment(logger, telemetry.registry),
  };
}

/**
 * Under iptables capture every connection needs its original destination:
 * load the native addon now, so an image without it stops at start with one
 * sentence instead of failing every captured connection.
 */
function checkOriginalDestination(logger: Logger): void {
  try {
    logger.info({ addon: loadOriginalDestinationAddon() }, 'original destination addon loaded');
  } catch (err) {
    if (!(err instanceof OriginalDestinationError)) throw err;
    process.stderr.write(`sidecar-agent: --capture-mode iptables cannot work: ${err.message}\n`);
    process.exit(1);
  }
}

/** The app probes the injector moved to the agent (Istio's ISTIO_KUBE_APP_PROBERS); a bad value is one sentence. */
function appProber(options: AppProberOptions): AppProber {
  try {
    return AppProber.fromEnv(process.env[APP_PROBERS_ENV], options);
  } catch (err) {
    if (err instanceof AppProberError) throw new FlagError(err.message);
    throw err;
  }
}

/** Every flag the agent passes to runProxyApp (which adds --log-level and --help). */
export const PROXY_APP_FLAGS = {
  ...AGENT_FLAGS,
  ...CERTIFICATE_FLAGS,
  ...LOCALITY_FLAG,
  ...NETWORK_FLAG,
  ...TELEMETRY_FLAGS,
  ...APP_METRICS_FLAG,
};

/** Runs the proxy beside the workload until SIGINT or SIGTERM. */
export function runAgent(): Promise<void> {
  return runProxyApp({ component: 'sidecar-agent', usage: USAGE, flags: PROXY_APP_FLAGS, build });
}
