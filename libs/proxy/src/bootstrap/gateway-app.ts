import type { Logger } from '@mizzen/runtime';
import type { XdsNode } from '@mizzen/xds';
import type { ProxyObserver } from '../observe/records.js';
import {
  CERTIFICATE_FLAGS,
  FlagError,
  LOCALITY_FLAG,
  NETWORK_FLAG,
  parseAddress,
  parseCertificateFlags,
  parseIp,
  parseLabels,
  parseLocality,
  parseName,
  parseNetwork,
  parsePort,
  parsePortMap,
} from './flags.js';
import { gatewayNode } from './node.js';
import { type MetricsRegistry, rateLimitsFromEnvironment } from './rate-limits.js';
import { type ParsedFlags, runProxyApp } from './run.js';

type ArgOptions = Parameters<typeof runProxyApp>[0]['flags'];

/** What makes a gateway an ingress or an egress gateway: only its defaults (Istio's charts' names and labels). */
export interface GatewayDefaults {
  /** The process name in logs and messages: `ingress-gateway`. */
  component: string;
  name: string;
  labels: string;
  portMap: string;
  /** The paragraph of `--help` that says what this gateway is for. */
  purpose: string;
  /** Other gateways the same app can be (`--role NAME`): Istio runs its east-west gateway from the ingress image. */
  roles?: Record<string, GatewayDefaults>;
  /** The gateway serves other networks: it needs `--network`, and carries its network as a label. */
  networkGateway?: boolean;
}

/**
 * Istio's east-west gateway (`istio-eastwestgateway`, from the ingress image):
 * a Gateway with an AUTO_PASSTHROUGH server on 15443 selects it, and proxies
 * on other networks reach this one's workloads through it. Its labels carry
 * `topology.istio.io/network`, so its auto-registered service on 15443 is
 * that network's gateway without any meshNetworks.
 */
export const EASTWEST_GATEWAY: GatewayDefaults = {
  component: 'ingress-gateway',
  name: 'istio-eastwestgateway',
  labels: 'istio=eastwestgateway,app=istio-eastwestgateway',
  portMap: '15443=15443',
  purpose:
    "The east-west gateway of a network: passes the mesh's mTLS from other networks, unopened,\n" +
    'to the workloads of its own network by its SNI (a Gateway server with tls mode AUTO_PASSTHROUGH).',
  networkGateway: true,
};

export const INGRESS_GATEWAY: GatewayDefaults = {
  component: 'ingress-gateway',
  name: 'istio-ingressgateway',
  labels: 'istio=ingressgateway,app=istio-ingressgateway',
  portMap: '80=8080,443=8443',
  purpose:
    "The mesh's edge: serves the Gateway resources whose selector matches its labels.\n" +
    "--role eastwest makes it Istio's east-west gateway instead (defaults istio-eastwestgateway,\n" +
    'istio=eastwestgateway, 15443=15443, and the topology.istio.io/network label of --network).',
  roles: { eastwest: EASTWEST_GATEWAY },
};

export const EGRESS_GATEWAY: GatewayDefaults = {
  component: 'egress-gateway',
  name: 'istio-egressgateway',
  labels: 'istio=egressgateway,app=istio-egressgateway',
  portMap: '80=8080,443=8443',
  purpose:
    'The way out of the mesh: serves the Gateway resources whose selector matches its labels, so\n' +
    'VirtualServices bound to `mesh` and to it send traffic for external hosts (ServiceEntries)\n' +
    'through it, where DestinationRules originate TLS or SNI passes it through.',
};

/** Telemetry (the stats port, traces, access logs), given by the app so this lib does not depend on it. */
export interface GatewayTelemetry<F> {
  flags: ArgOptions;
  parse: (values: ParsedFlags) => F & { statsPort?: number };
  start: (opts: { component: string; node: XdsNode; logger: Logger; host: string; flags: F }) => {
    observer: ProxyObserver;
    /** Where rate limit decisions are counted too. */
    registry?: MetricsRegistry;
  };
}

function usage(d: GatewayDefaults): string {
  return `usage: ${d.component} --pilot HOST:PORT [--name ${d.name}] [--namespace istio-system]
         [--labels ${d.labels}] [--port-map ${d.portMap}]
         [--ip 127.0.0.1] [--admin-port 15000] [--health-port 15021] [--log-level info]
         [--stats-port 15020] [--otlp-endpoint http://HOST:4318] [--proxy-config JSON]
         [--locality region/zone/subzone] [--network NAME]${d.roles ? ` [--role ${Object.keys(d.roles).join('|')}]` : ''}
         [--ca-address HOST:PORT --ca-token-file FILE [--trust-domain cluster.local] [--cert-ttl 24h]
         [--cert-key-type ecdsa|rsa|EC-P384|RSA-3072|…]
         [--ca-root-cert FILE | --ca-plaintext]]

${d.purpose}
--port-map maps a Gateway server port (the gateway Service's port) to the port this process
really listens on; pilot registers the gateway as the service <name>.<namespace>.svc.cluster.local
with those ports, so sidecars can route to it. --proxy-config is Istio's proxy.istio.io/config
annotation (JSON), e.g. '{"gatewayTopology":{"numTrustedProxies":1,"proxyProtocol":{}}}'.
/stats/prometheus on --stats-port serves Istio's metrics; traces and OpenTelemetry access logs
go where pilot's mesh config says, or to --otlp-endpoint (an OTLP/HTTP receiver) when given.
REDIS_URL=redis://HOST:PORT in the environment shares RateLimitPolicy counters with every replica
(memory otherwise); RATELIMIT_TIMEOUT_MS bounds each Redis call (100).
--locality is where the gateway runs: DestinationRule localityLbSetting orders and weighs endpoints by it.
--network (else ISTIO_META_NETWORK) is the network it runs on: endpoints on other networks are reached
through their east-west gateways.`;
}

/** Istio's label naming the network a workload or gateway is on. */
const NETWORK_LABEL = 'topology.istio.io/network';

/** The defaults of `--role NAME`, or the app's own without it. */
function gatewayRole(base: GatewayDefaults, role: string | undefined): GatewayDefaults {
  if (role === undefined) return base;
  const found = base.roles?.[role];
  if (!found)
    throw new FlagError(`--role must be one of ${Object.keys(base.roles ?? {}).join(', ')}, got "${role}"`);
  return found;
}

function parseProxyConfig(value: string | undefined): Record<string, unknown> | undefined {
  if (value === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    throw new FlagError(`--proxy-config must be JSON (Istio's ProxyConfig), got "${value}"`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new FlagError('--proxy-config must be a JSON object (Istio ProxyConfig)');
  return parsed as Record<string, unknown>;
}

/**
 * The `main` of both gateway apps: one engine, one set of flags, the
 * defaults (name, labels, port map) telling an ingress from an egress gateway.
 */
export function runGatewayApp<F>(base: GatewayDefaults, telemetry: GatewayTelemetry<F>): Promise<void> {
  return runProxyApp({
    component: base.component,
    usage: usage(base),
    flags: {
      ...(base.roles ? { role: { type: 'string' } } : {}),
      ...NETWORK_FLAG,
      pilot: { type: 'string' },
      name: { type: 'string' },
      namespace: { type: 'string' },
      labels: { type: 'string' },
      'port-map': { type: 'string' },
      ip: { type: 'string' },
      'admin-port': { type: 'string' },
      'health-port': { type: 'string' },
      'proxy-config': { type: 'string' },
      ...LOCALITY_FLAG,
      ...CERTIFICATE_FLAGS,
      ...telemetry.flags,
    },
    build: (values, logger) => {
      const s = (k: string) => values[k] as string | undefined;
      const defaults = gatewayRole(base, s('role'));
      const network = parseNetwork(s('network'));
      if (defaults.networkGateway && !network)
        throw new FlagError(
          `--role ${s('role')} needs --network NAME (or ISTIO_META_NETWORK): the network whose workloads it serves`,
        );
      const ip = parseIp(s('ip'));
      const adminPort = parsePort(s('admin-port'), '--admin-port', 15000);
      const healthPort = parsePort(s('health-port'), '--health-port', 15021);
      const name = parseName(s('name'), '--name', defaults.name);
      const namespace = parseName(s('namespace'), '--namespace', 'istio-system');
      const serviceAccount = `${name}-service-account`;
      const certificates = parseCertificateFlags(values, { namespace, serviceAccount });
      const telemetryFlags = telemetry.parse(values);
      const node = gatewayNode({
        name,
        namespace,
        mtls: certificates !== undefined,
        labels: {
          ...parseLabels(s('labels') ?? defaults.labels),
          // Istio's east-west gateway Service and pods carry the network they serve.
          ...(defaults.networkGateway && network ? { [NETWORK_LABEL]: network } : {}),
        },
        ...(network ? { network } : {}),
        ip,
        portMap: parsePortMap(s('port-map') ?? defaults.portMap),
        adminPort,
        healthPort,
        statsPort: telemetryFlags.statsPort,
        serviceAccount,
        service: name,
        proxyConfig: parseProxyConfig(s('proxy-config')),
        locality: parseLocality(s('locality')),
      });
      const { observer, registry } = telemetry.start({
        component: base.component,
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
        observer,
        rateLimits: rateLimitsFromEnvironment(logger, registry),
      };
    },
  });
}
