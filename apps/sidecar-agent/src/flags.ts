import { type ParseArgsConfig, parseArgs } from 'node:util';

export const USAGE = `usage: sidecar-agent --pilot HOST:PORT --workload NAME [--workload-name NAME] [--namespace default] [--service NAME]
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

/** The agent's own flags; the rest of its command line comes from its libraries (see agent.ts). */
export const AGENT_FLAGS = {
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
  'capture-mode': { type: 'string' },
} as const;

/**
 * The flags the agent takes from its libraries, by name: @mizzen/proxy's
 * CERTIFICATE_FLAGS, LOCALITY_FLAG and NETWORK_FLAG, @mizzen/telemetry's
 * TELEMETRY_FLAGS and APP_METRICS_FLAG, and runProxyApp's --log-level and
 * --help. Named here because importing those packages takes seconds (their
 * entry points load the whole proxy and OpenTelemetry's SDK), and a name is
 * all it takes to tell a flag the agent does not know; test/flags.test.ts
 * checks these names against the libraries'.
 */
const LIBRARY_STRING_FLAGS = [
  'ca-address',
  'ca-token-file',
  'trust-domain',
  'cert-ttl',
  'cert-key-type',
  'ca-root-cert',
  'locality',
  'network',
  'stats-port',
  'otlp-endpoint',
  'app-metrics',
  'log-level',
] as const;
const LIBRARY_BOOLEAN_FLAGS = ['ca-plaintext', 'help'] as const;

/** Every flag the agent's command line takes, as runProxyApp parses it. */
export const COMMAND_LINE_FLAGS: NonNullable<ParseArgsConfig['options']> = {
  ...AGENT_FLAGS,
  ...Object.fromEntries(LIBRARY_STRING_FLAGS.map((f) => [f, { type: 'string' as const }])),
  ...Object.fromEntries(LIBRARY_BOOLEAN_FLAGS.map((f) => [f, { type: 'boolean' as const }])),
};

/**
 * Checks the command line before the proxy's modules load: an unknown flag or
 * a missing value is answered at once, in runProxyApp's words (the message,
 * the usage, exit code 2), and `--help` prints the usage. True when the agent
 * should start; runProxyApp then parses the same flags again and checks their
 * values.
 */
export function commandLineOk(args: string[]): boolean {
  let help: boolean;
  try {
    help = parseArgs({ args, options: COMMAND_LINE_FLAGS, strict: true }).values.help === true;
  } catch (err) {
    process.stderr.write(`sidecar-agent: ${(err as Error).message}\n${USAGE}\n`);
    process.exitCode = 2;
    return false;
  }
  if (help) process.stdout.write(`${USAGE}\n`);
  return !help;
}
