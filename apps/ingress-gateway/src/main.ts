import {
  CERTIFICATE_FLAGS,
  gatewayNode,
  type ParsedFlags,
  parseAddress,
  parseCertificateFlags,
  parseIp,
  parseLabels,
  parseName,
  parsePort,
  parsePortMap,
  rateLimitsFromEnvironment,
  runProxyApp,
} from '@mizzen/proxy';
import type { Logger } from '@mizzen/runtime';
import { parseTelemetryFlags, startProxyTelemetry, TELEMETRY_FLAGS } from '@mizzen/telemetry';

const USAGE = `usage: ingress-gateway --pilot HOST:PORT [--name istio-ingressgateway] [--namespace istio-system]
         [--labels istio=ingressgateway,app=istio-ingressgateway] [--port-map 80=8080,443=8443]
         [--ip 127.0.0.1] [--admin-port 15000] [--health-port 15021] [--log-level info]
         [--stats-port 15020] [--otlp-endpoint http://HOST:4318]
         [--ca-address HOST:PORT --ca-token-file FILE [--trust-domain cluster.local] [--cert-ttl 24h]]

The mesh's edge: serves the Gateway resources whose selector matches its labels.
--port-map maps a Gateway server port to the port this process really listens on.
/stats/prometheus on --stats-port serves Istio's metrics; traces and OpenTelemetry access logs
go where pilot's mesh config says, or to --otlp-endpoint (an OTLP/HTTP receiver) when given.
REDIS_URL=redis://HOST:PORT in the environment shares RateLimitPolicy counters with every replica
(memory otherwise); RATELIMIT_TIMEOUT_MS bounds each Redis call (100).`;

/** Istio's default ingress gateway labels, which `selector: {istio: ingressgateway}` picks. */
const DEFAULT_LABELS = 'istio=ingressgateway,app=istio-ingressgateway';

function build(values: ParsedFlags, logger: Logger) {
  const s = (k: string) => values[k] as string | undefined;
  const ip = parseIp(s('ip'));
  const adminPort = parsePort(s('admin-port'), '--admin-port', 15000);
  const healthPort = parsePort(s('health-port'), '--health-port', 15021);
  const name = parseName(s('name'), '--name', 'istio-ingressgateway');
  const namespace = parseName(s('namespace'), '--namespace', 'istio-system');
  const certificates = parseCertificateFlags(values, {
    namespace,
    serviceAccount: `${name}-service-account`,
  });
  const telemetryFlags = parseTelemetryFlags(values);
  const node = gatewayNode({
    name,
    namespace,
    mtls: certificates !== undefined,
    labels: parseLabels(s('labels') ?? DEFAULT_LABELS),
    ip,
    portMap: parsePortMap(s('port-map') ?? '80=8080,443=8443'),
    adminPort,
    healthPort,
    statsPort: telemetryFlags.statsPort,
    serviceAccount: `${name}-service-account`,
  });
  const telemetry = startProxyTelemetry({
    component: 'ingress-gateway',
    node,
    logger,
    host: ip,
    flags: telemetryFlags,
  });
  return {
    node,
    pilot: parseAddress(s('pilot'), '--pilot'),
    adminHost: ip,
    adminPort,
    healthPort,
    certificates,
    observer: telemetry.observer,
    rateLimits: rateLimitsFromEnvironment(logger, telemetry.registry),
  };
}

void runProxyApp({
  component: 'ingress-gateway',
  usage: USAGE,
  flags: {
    pilot: { type: 'string' },
    name: { type: 'string' },
    namespace: { type: 'string' },
    labels: { type: 'string' },
    'port-map': { type: 'string' },
    ip: { type: 'string' },
    'admin-port': { type: 'string' },
    'health-port': { type: 'string' },
    ...CERTIFICATE_FLAGS,
    ...TELEMETRY_FLAGS,
  },
  build,
});
