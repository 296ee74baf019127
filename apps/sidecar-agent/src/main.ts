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
import { runIptablesCommand } from './iptables/command.js';

const USAGE = `usage: sidecar-agent --pilot HOST:PORT --workload NAME [--workload-name NAME] [--namespace default] [--service NAME]
         [--service-account NAME] [--labels k=v,...] [--port name:servicePort:appPort:sidecarPort]...
         [--ip 127.0.0.1] [--outbound-port PORT] [--admin-port 15000] [--health-port 15021] [--log-level info]
         [--ca-address HOST:PORT --ca-token-file FILE [--trust-domain cluster.local] [--cert-ttl 24h]
         [--cert-key-type ecdsa|rsa|EC-P384|RSA-3072|…]
         [--ca-root-cert FILE | --ca-plaintext]]
         [--capture-mode http-proxy|iptables] [--locality region/zone/subzone] [--network NAME]
         [--stats-port 15020] [--app-metrics http://127.0.0.1:PORT/metrics] [--otlp-endpoint http://HOST:4318]
       sidecar-agent iptables [istio-iptables flags]   (see sidecar-agent iptables --help)

The proxy beside one workload. Applications send outbound HTTP through it with
HTTP_PROXY=http://IP:OUTBOUND_PORT; callers reach the workload on each sidecarPort.
With --capture-mode iptables the rules of \`sidecar-agent iptables\` redirect every TCP
connection instead (outbound to --outbound-port, 15001 unless set), and the agent
recovers each one's original destination.
/stats/prometheus on --stats-port serves Istio's metrics, with the app's own metrics from
--app-metrics appended (Istio's metrics merging; on Kubernetes the injector passes the pod's
prometheus.io/* annotations in ISTIO_PROMETHEUS_ANNOTATIONS instead). Traces and OpenTelemetry access logs go where
pilot's mesh config says, or to --otlp-endpoint (an OTLP/HTTP receiver) when given.
REDIS_URL=redis://HOST:PORT in the environment shares RateLimitPolicy counters with every
replica (memory otherwise); RATELIMIT_TIMEOUT_MS bounds each Redis call (100).
--locality is where the workload runs: its auto-registered endpoint carries it, and
DestinationRule localityLbSetting orders and weighs the endpoints this proxy calls by it.
--network (else ISTIO_META_NETWORK) is the network the workload runs on: its auto-registered
endpoint carries it, and endpoints on other networks are reached through their east-west gateway.
--workload names the pod (the node id); --workload-name (else ISTIO_META_WORKLOAD_NAME, else
--workload) the workload it belongs to, a Deployment's name, which metrics report as
source_workload and destination_workload.
Kubelet probes the injector rewrote (ISTIO_KUBE_APP_PROBERS) are answered on --stats-port at
/app-health/<container>/livez|readyz|startupz: the agent runs the app's HTTP or TCP probe.
--cert-key-type is the workload key's type (ECDSA P-256 unless asked; without the flag, Istio's
ECC_SIGNATURE_ALGORITHM=ECDSA|RSA with ECC_CURVE or WORKLOAD_RSA_KEY_SIZE from the environment).
The CA is reached over TLS and its certificate checked against --ca-root-cert (Istio's
istio-ca-root-cert file; CA_ROOT_CA in the environment) and the mesh roots pilot sends;
--ca-plaintext talks to a citadel started with --grpc-plaintext (local debugging only).`;

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

if (process.argv[2] === 'iptables') {
  // The init container's job: install the capture rules, then exit.
  process.exitCode = runIptablesCommand(process.argv.slice(3), {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
  });
} else {
  void runProxyApp({
    component: 'sidecar-agent',
    usage: USAGE,
    flags: {
      pilot: { type: 'string' },
      workload: { type: 'string' },
      'workload-name': { type: 'string' },
      namespace: { type: 'string' },
      service: { type: 'string' },
      'service-account': { type: 'string' },
      labels: { type: 'string' },
      port: { type: 'string', multiple: true },
      ip: { type: 'string' },
      'outbound-port': { type: 'string' },
      'admin-port': { type: 'string' },
      'health-port': { type: 'string' },
      ...CERTIFICATE_FLAGS,
      'capture-mode': { type: 'string' },
      ...LOCALITY_FLAG,
      ...NETWORK_FLAG,
      ...TELEMETRY_FLAGS,
      ...APP_METRICS_FLAG,
    },
    build,
  });
}
