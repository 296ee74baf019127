import { z } from 'zod';
import type { Checker } from '../validation/checker.js';
import {
  checkDestination,
  checkSelectorNotEmpty,
  isHttpProtocol,
  protocolProblem,
} from '../validation/common.js';
import { dnsLabel, fqdn, ipAddress, namespacedHost, unixAddress } from '../validation/names.js';
import { obj, portOrZero, str, strings } from '../validation/schema.js';
import type { KindValidation } from './context.js';
import {
  type ConnectionPoolSettings,
  checkConnectionPool,
  connectionPoolSchema,
} from './destination-rule.js';
import { checkServerTls, type ServerTLSSettings, serverTlsSchema } from './gateway.js';
import { type Destination, destinationSchema } from './virtual-service.js';
import { type WorkloadSelector, workloadSelectorSchema } from './workload-entry.js';

// ---------------------------------------------------------------------------
// Types: networking.istio.io Sidecar (v1 == v1beta1 == v1alpha3).
// ---------------------------------------------------------------------------

export type CaptureMode = 'DEFAULT' | 'IPTABLES' | 'NONE';

export interface SidecarPort {
  number?: number;
  protocol?: string;
  name?: string;
  /** @deprecated has no effect on sidecars */
  targetPort?: number;
}

export interface IstioIngressListener {
  port: SidecarPort;
  bind?: string;
  captureMode?: CaptureMode;
  defaultEndpoint?: string;
  tls?: ServerTLSSettings;
  connectionPool?: ConnectionPoolSettings;
}

export interface IstioEgressListener {
  port?: SidecarPort;
  bind?: string;
  captureMode?: CaptureMode;
  /** `namespace/host` entries: `./*`, `istio-system/*`, `*\/reviews.default.svc.cluster.local`. */
  hosts: string[];
}

export interface OutboundTrafficPolicy {
  mode?: 'REGISTRY_ONLY' | 'ALLOW_ANY';
  egressProxy?: Destination;
}

export interface SidecarSpec {
  workloadSelector?: WorkloadSelector;
  ingress?: IstioIngressListener[];
  egress?: IstioEgressListener[];
  inboundConnectionPool?: ConnectionPoolSettings;
  outboundTrafficPolicy?: OutboundTrafficPolicy;
}

// ---------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------

const sidecarPort = () =>
  obj({
    number: portOrZero().optional(),
    protocol: str().optional(),
    name: str().optional(),
    targetPort: portOrZero().optional(),
  });
const captureMode = () => z.enum(['DEFAULT', 'IPTABLES', 'NONE']);

export const sidecarSchema = obj({
  workloadSelector: workloadSelectorSchema().optional(),
  ingress: z
    .array(
      obj({
        port: sidecarPort(),
        bind: str().optional(),
        captureMode: captureMode().optional(),
        defaultEndpoint: str().optional(),
        tls: serverTlsSchema().optional(),
        connectionPool: connectionPoolSchema().optional(),
      }),
    )
    .optional(),
  egress: z
    .array(
      obj({
        port: sidecarPort().optional(),
        bind: str().optional(),
        captureMode: captureMode().optional(),
        hosts: strings(),
      }),
    )
    .optional(),
  inboundConnectionPool: connectionPoolSchema().optional(),
  outboundTrafficPolicy: obj({
    mode: z.enum(['REGISTRY_ONLY', 'ALLOW_ANY']).optional(),
    egressProxy: destinationSchema().optional(),
  }).optional(),
});

// ---------------------------------------------------------------------------
// Semantic checks (Istio's ValidateSidecar)
// ---------------------------------------------------------------------------

function checkSidecar(spec: SidecarSpec, at: Checker): void {
  if (spec.workloadSelector) {
    checkSelectorNotEmpty(spec.workloadSelector.labels ?? {}, at.at('workloadSelector'), 'Sidecar');
  }
  if (
    !spec.ingress?.length &&
    !spec.egress?.length &&
    !spec.outboundTrafficPolicy &&
    !spec.inboundConnectionPool
  ) {
    at.error(
      'empty Sidecar: set at least one of ingress, egress, outboundTrafficPolicy or inboundConnectionPool',
    );
  }

  const ingressPorts = new Set<number>();
  for (const [i, l] of (spec.ingress ?? []).entries()) {
    const here = at.at('ingress', i);
    checkPort(l.port, here.at('port'));
    const n = l.port.number ?? 0;
    if (n === 0) here.at('port', 'number').error('must be a port number between 1 and 65535, got 0');
    else if (ingressPorts.has(n))
      here.at('port', 'number').error(`port ${n} already has an ingress listener`);
    ingressPorts.add(n);
    if (l.bind !== undefined) here.at('bind').check(ipAddress(l.bind));
    if (l.defaultEndpoint !== undefined)
      here.at('defaultEndpoint').check(defaultEndpointProblem(l.defaultEndpoint));
    if (l.tls) {
      const tls = here.at('tls');
      if (l.tls.subjectAltNames?.length)
        tls.at('subjectAltNames').error('is not supported on sidecar ingress');
      if (l.tls.httpsRedirect) tls.at('httpsRedirect').error('is not supported on sidecar ingress');
      if (l.tls.credentialName) tls.at('credentialName').error('is not supported on sidecar ingress');
      if (l.tls.mode === 'ISTIO_MUTUAL' || l.tls.mode === 'AUTO_PASSTHROUGH') {
        tls.at('mode').error(`${l.tls.mode} is not supported on sidecar ingress`);
      }
      checkServerTls(l.tls, tls);
    }
    if (l.connectionPool) {
      checkConnectionPool(l.connectionPool, here.at('connectionPool'));
      if (l.connectionPool.http && l.port.protocol !== undefined && !isHttpProtocol(l.port.protocol)) {
        here
          .at('connectionPool', 'http')
          .warn(`port ${n} is not HTTP (${l.port.protocol}), so only the tcp settings apply`);
      }
    }
  }
  if (spec.inboundConnectionPool)
    checkConnectionPool(spec.inboundConnectionPool, at.at('inboundConnectionPool'));

  const egressPorts = new Set<number>();
  const sockets = new Set<string>();
  const egress = spec.egress ?? [];
  for (const [i, l] of egress.entries()) {
    const here = at.at('egress', i);
    if (!l.port) {
      if (i !== egress.length - 1)
        here.at('port').error('only the last egress listener may omit its port (the catch-all)');
    } else {
      checkPort(l.port, here.at('port'));
      const n = l.port.number ?? 0;
      const unix = l.bind?.startsWith('unix://') ?? false;
      if (n === 0) {
        if (!unix) here.at('port', 'number').error('port 0 needs a unix:// bind address');
        else if (sockets.has(l.bind!)) here.at('bind').error(`unix socket ${l.bind} already has a listener`);
        if (l.captureMode === 'IPTABLES')
          here.at('captureMode').error('must be DEFAULT or NONE for a unix socket listener');
        sockets.add(l.bind ?? '');
      } else if (egressPorts.has(n)) {
        here.at('port', 'number').error(`port ${n} already has an egress listener`);
      }
      if (n !== 0) egressPorts.add(n);
      // Istio: a unix:// bind goes with port 0; any other port binds an IP.
      if (l.bind !== undefined)
        here.at('bind').check(n === 0 && unix ? unixAddress(l.bind) : ipAddress(l.bind));
    }
    if (l.hosts.length === 0)
      here.at('hosts').error('at least one host is required (for example "./*" or "istio-system/*")');
    for (const [j, host] of l.hosts.entries()) {
      const problem = namespacedHost(host, 'sidecar');
      here.at('hosts', j).check(problem);
      const name = host.slice(host.indexOf('/') + 1);
      if (!problem && !name.includes('.') && name !== '*') {
        here
          .at('hosts', j)
          .warn(
            `"${name}" is a short name: egress hosts are matched as FQDNs, so it only matches a service whose hostname is exactly "${name}"; for a Kubernetes service use "${host.slice(0, host.indexOf('/'))}/${name}.<namespace>.svc.cluster.local" or "${host.slice(0, host.indexOf('/'))}/*"`,
          );
      }
    }
  }

  const policy = spec.outboundTrafficPolicy;
  if (policy?.egressProxy) {
    const here = at.at('outboundTrafficPolicy', 'egressProxy');
    if (policy.mode !== 'ALLOW_ANY') here.error('egressProxy needs mode ALLOW_ANY');
    here.at('host').check(fqdn(policy.egressProxy.host));
    if (policy.egressProxy.port?.number === undefined)
      here.at('port').error('the egress proxy port is required');
    checkDestination(policy.egressProxy, here);
  }
}

function checkPort(port: SidecarPort, at: Checker): void {
  if (port.name !== undefined) at.at('name').check(dnsLabel(port.name, 'port name'));
  at.at('protocol').check(protocolProblem(port.protocol));
  if (port.targetPort !== undefined)
    at.at('targetPort').error('targetPort has no effect on sidecars; remove it');
}

/** `127.0.0.1:port`, `0.0.0.0:port`, `[::1]:port`, `[::]:port`, `:port` or `unix://path`. */
function defaultEndpointProblem(value: string): string | undefined {
  if (value.startsWith('unix://')) return unixAddress(value);
  const m = /^(127\.0\.0\.1|0\.0\.0\.0|\[::1\]|\[::\]|)?:(\d+)$/.exec(value);
  if (!m)
    return `"${value}" must be 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port> or unix://<path>`;
  const port = Number(m[2]);
  if (port < 1 || port > 65535) return `port ${port} is not between 1 and 65535`;
  return undefined;
}

export const sidecar: KindValidation<SidecarSpec> = {
  schema: sidecarSchema,
  check: checkSidecar,
};
