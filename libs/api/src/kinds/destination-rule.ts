import { z } from 'zod';
import { isValidDuration, parseDuration } from '../duration.js';
import type { Checker } from '../validation/checker.js';
import { checkExportTo, checkSelectorNotEmpty } from '../validation/common.js';
import { dnsLabel, fqdn, isIP, wildcardHost } from '../validation/names.js';
import {
  bool,
  duration,
  int,
  labels,
  num,
  obj,
  percentInt,
  port,
  str,
  strings,
  uint,
} from '../validation/schema.js';
import type { KindValidation } from './context.js';
import { type LabelSelector, labelSelectorSchema } from './selectors.js';
import type { PortSelector } from './virtual-service.js';

// ---------------------------------------------------------------------------
// Types: networking.istio.io DestinationRule (v1 == v1beta1 == v1alpha3).
// ---------------------------------------------------------------------------

export type SimpleLB =
  | 'UNSPECIFIED'
  | 'LEAST_CONN'
  | 'RANDOM'
  | 'PASSTHROUGH'
  | 'ROUND_ROBIN'
  | 'LEAST_REQUEST';

export interface HTTPCookie {
  name: string;
  path?: string;
  ttl?: string;
  attributes?: { name: string; value?: string }[];
}

export interface ConsistentHashLB {
  httpHeaderName?: string;
  httpCookie?: HTTPCookie;
  useSourceIp?: boolean;
  httpQueryParameterName?: string;
  ringHash?: { minimumRingSize?: number };
  maglev?: { tableSize?: number };
  /** @deprecated use ringHash.minimumRingSize */
  minimumRingSize?: number;
}

export interface LocalityLoadBalancerSetting {
  distribute?: { from?: string; to?: Record<string, number> }[];
  failover?: { from?: string; to?: string }[];
  failoverPriority?: string[];
  enabled?: boolean;
}

export interface WarmupConfiguration {
  duration: string;
  minimumPercent?: number;
  aggression?: number;
}

export interface LoadBalancerSettings {
  simple?: SimpleLB;
  consistentHash?: ConsistentHashLB;
  localityLbSetting?: LocalityLoadBalancerSetting;
  warmupDurationSecs?: string;
  warmup?: WarmupConfiguration;
}

export interface TCPKeepalive {
  probes?: number;
  time?: string;
  interval?: string;
}

export interface TCPSettings {
  maxConnections?: number;
  connectTimeout?: string;
  tcpKeepalive?: TCPKeepalive;
  maxConnectionDuration?: string;
  idleTimeout?: string;
}

export interface HTTPSettings {
  http1MaxPendingRequests?: number;
  http2MaxRequests?: number;
  maxRequestsPerConnection?: number;
  maxRetries?: number;
  idleTimeout?: string;
  h2UpgradePolicy?: 'DEFAULT' | 'DO_NOT_UPGRADE' | 'UPGRADE';
  useClientProtocol?: boolean;
  maxConcurrentStreams?: number;
}

export interface ConnectionPoolSettings {
  tcp?: TCPSettings;
  http?: HTTPSettings;
}

export interface OutlierDetection {
  splitExternalLocalOriginErrors?: boolean;
  consecutiveLocalOriginFailures?: number;
  consecutiveGatewayErrors?: number;
  consecutive5xxErrors?: number;
  interval?: string;
  baseEjectionTime?: string;
  maxEjectionPercent?: number;
  minHealthPercent?: number;
  /** @deprecated use consecutiveGatewayErrors or consecutive5xxErrors */
  consecutiveErrors?: number;
}

export interface ClientTLSSettings {
  mode?: 'DISABLE' | 'SIMPLE' | 'MUTUAL' | 'ISTIO_MUTUAL';
  clientCertificate?: string;
  privateKey?: string;
  caCertificates?: string;
  credentialName?: string;
  subjectAltNames?: string[];
  sni?: string;
  insecureSkipVerify?: boolean;
  caCrl?: string;
}

export interface TunnelSettings {
  protocol?: string;
  targetHost: string;
  targetPort: number;
}

export interface ProxyProtocol {
  version?: 'V1' | 'V2';
}

export interface RetryBudget {
  percent?: number;
  minRetryConcurrency?: number;
}

export interface PortTrafficPolicy {
  port?: PortSelector;
  loadBalancer?: LoadBalancerSettings;
  connectionPool?: ConnectionPoolSettings;
  outlierDetection?: OutlierDetection;
  tls?: ClientTLSSettings;
}

export interface TrafficPolicy {
  loadBalancer?: LoadBalancerSettings;
  connectionPool?: ConnectionPoolSettings;
  outlierDetection?: OutlierDetection;
  tls?: ClientTLSSettings;
  portLevelSettings?: PortTrafficPolicy[];
  tunnel?: TunnelSettings;
  proxyProtocol?: ProxyProtocol;
  retryBudget?: RetryBudget;
}

export interface Subset {
  name: string;
  labels?: Record<string, string>;
  trafficPolicy?: TrafficPolicy;
}

export interface DestinationRuleSpec {
  host: string;
  trafficPolicy?: TrafficPolicy;
  subsets?: Subset[];
  exportTo?: string[];
  workloadSelector?: LabelSelector;
}

// ---------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------

const loadBalancer = () =>
  obj({
    simple: z
      .enum(['UNSPECIFIED', 'LEAST_CONN', 'RANDOM', 'PASSTHROUGH', 'ROUND_ROBIN', 'LEAST_REQUEST'])
      .optional(),
    consistentHash: obj({
      httpHeaderName: str().optional(),
      httpCookie: obj({
        name: str(),
        path: str().optional(),
        ttl: duration({ allowZero: true }).optional(),
        attributes: z.array(obj({ name: str(), value: str().optional() })).optional(),
      }).optional(),
      useSourceIp: bool().optional(),
      httpQueryParameterName: str().optional(),
      ringHash: obj({ minimumRingSize: uint().optional() }).optional(),
      maglev: obj({ tableSize: uint().optional() }).optional(),
      minimumRingSize: uint().optional(),
    }).optional(),
    localityLbSetting: obj({
      distribute: z
        .array(obj({ from: str().optional(), to: z.record(z.string(), uint()).optional() }))
        .optional(),
      failover: z.array(obj({ from: str().optional(), to: str().optional() })).optional(),
      failoverPriority: strings().optional(),
      enabled: bool().optional(),
    }).optional(),
    warmupDurationSecs: duration().optional(),
    warmup: obj({
      duration: duration(),
      minimumPercent: num(0, 100).optional(),
      aggression: num(1).optional(),
    }).optional(),
  });

/** Connection pool settings, shared with the Sidecar's inbound connection pools. */
export const connectionPoolSchema = () =>
  obj({
    tcp: obj({
      maxConnections: int(0, 2_147_483_647).optional(),
      connectTimeout: duration().optional(),
      tcpKeepalive: obj({
        probes: uint().optional(),
        time: duration().optional(),
        interval: duration().optional(),
      }).optional(),
      maxConnectionDuration: duration().optional(),
      idleTimeout: duration({ allowZero: true }).optional(),
    }).optional(),
    http: obj({
      http1MaxPendingRequests: int(0, 2_147_483_647).optional(),
      http2MaxRequests: int(0, 2_147_483_647).optional(),
      maxRequestsPerConnection: int(0, 2_147_483_647).optional(),
      maxRetries: int(0, 2_147_483_647).optional(),
      idleTimeout: duration({ allowZero: true }).optional(),
      h2UpgradePolicy: z.enum(['DEFAULT', 'DO_NOT_UPGRADE', 'UPGRADE']).optional(),
      useClientProtocol: bool().optional(),
      maxConcurrentStreams: int(0, 2_147_483_647).optional(),
    }).optional(),
  });

const outlierDetection = () =>
  obj({
    splitExternalLocalOriginErrors: bool().optional(),
    consecutiveLocalOriginFailures: uint().optional(),
    consecutiveGatewayErrors: uint().optional(),
    consecutive5xxErrors: uint().optional(),
    interval: duration().optional(),
    baseEjectionTime: duration().optional(),
    maxEjectionPercent: percentInt().optional(),
    minHealthPercent: percentInt().optional(),
    consecutiveErrors: int(0, 2_147_483_647).optional(),
  });

const clientTls = () =>
  obj({
    mode: z.enum(['DISABLE', 'SIMPLE', 'MUTUAL', 'ISTIO_MUTUAL']).optional(),
    clientCertificate: str().optional(),
    privateKey: str().optional(),
    caCertificates: str().optional(),
    credentialName: str().optional(),
    subjectAltNames: strings().optional(),
    sni: str().optional(),
    insecureSkipVerify: bool().optional(),
    caCrl: str().optional(),
  });

const trafficPolicy = () =>
  obj({
    loadBalancer: loadBalancer().optional(),
    connectionPool: connectionPoolSchema().optional(),
    outlierDetection: outlierDetection().optional(),
    tls: clientTls().optional(),
    portLevelSettings: z
      .array(
        obj({
          port: obj({ number: port().optional() }).optional(),
          loadBalancer: loadBalancer().optional(),
          connectionPool: connectionPoolSchema().optional(),
          outlierDetection: outlierDetection().optional(),
          tls: clientTls().optional(),
        }),
      )
      .optional(),
    tunnel: obj({ protocol: str().optional(), targetHost: str(), targetPort: port() }).optional(),
    proxyProtocol: obj({ version: z.enum(['V1', 'V2']).optional() }).optional(),
    retryBudget: obj({ percent: num(0, 100).optional(), minRetryConcurrency: uint().optional() }).optional(),
  });

export const destinationRuleSchema = obj({
  host: str(),
  trafficPolicy: trafficPolicy().optional(),
  subsets: z
    .array(obj({ name: str(), labels: labels().optional(), trafficPolicy: trafficPolicy().optional() }))
    .optional(),
  exportTo: strings().optional(),
  workloadSelector: labelSelectorSchema().optional(),
});

// ---------------------------------------------------------------------------
// Semantic checks (Istio's ValidateDestinationRule)
// ---------------------------------------------------------------------------

function checkDestinationRule(spec: DestinationRuleSpec, at: Checker, ctx: { namespace: string }): void {
  at.at('host').check(wildcardHost(spec.host));
  if (spec.trafficPolicy) checkTrafficPolicy(spec.trafficPolicy, at.at('trafficPolicy'));
  const names = new Set<string>();
  for (const [i, subset] of (spec.subsets ?? []).entries()) {
    const here = at.at('subsets', i);
    here.at('name').check(dnsLabel(subset.name, 'subset name'));
    if (names.has(subset.name)) here.at('name').error(`duplicate subset name "${subset.name}"`);
    names.add(subset.name);
    if (subset.trafficPolicy) checkTrafficPolicy(subset.trafficPolicy, here.at('trafficPolicy'));
  }
  checkExportTo(spec.exportTo, ctx.namespace, at);
  if (spec.workloadSelector) {
    checkSelectorNotEmpty(
      spec.workloadSelector.matchLabels ?? {},
      at.at('workloadSelector'),
      'DestinationRule',
    );
    const beyond = (spec.exportTo ?? []).filter((e) => e !== '.' && e !== ctx.namespace);
    if (beyond.length)
      at.at('exportTo').error(
        'a DestinationRule with a workloadSelector can only be exported to its own namespace',
      );
  }
}

export function checkTrafficPolicy(p: TrafficPolicy, at: Checker): void {
  if (Object.keys(p).length === 0) at.error('a traffic policy needs at least one setting');
  if (p.tunnel && p.proxyProtocol) at.error('only one of tunnel or proxyProtocol may be set');
  if (p.outlierDetection) checkOutlierDetection(p.outlierDetection, at.at('outlierDetection'));
  if (p.connectionPool) checkConnectionPool(p.connectionPool, at.at('connectionPool'));
  if (p.loadBalancer) checkLoadBalancer(p.loadBalancer, at.at('loadBalancer'), p.outlierDetection);
  if (p.tls) checkClientTls(p.tls, at.at('tls'));
  for (const [i, pl] of (p.portLevelSettings ?? []).entries()) {
    const here = at.at('portLevelSettings', i);
    if (pl.port?.number === undefined)
      here.at('port').error('a port-level policy must name its port (port.number)');
    if (!pl.loadBalancer && !pl.connectionPool && !pl.outlierDetection && !pl.tls) {
      here.error(
        'a port-level policy needs at least one of loadBalancer, connectionPool, outlierDetection or tls',
      );
    }
    if (pl.outlierDetection) checkOutlierDetection(pl.outlierDetection, here.at('outlierDetection'));
    if (pl.connectionPool) checkConnectionPool(pl.connectionPool, here.at('connectionPool'));
    if (pl.loadBalancer) checkLoadBalancer(pl.loadBalancer, here.at('loadBalancer'), pl.outlierDetection);
    if (pl.tls) checkClientTls(pl.tls, here.at('tls'));
  }
  const ports = (p.portLevelSettings ?? []).map((pl) => pl.port?.number).filter((n) => n !== undefined);
  const dup = ports.find((n, i) => ports.indexOf(n) !== i);
  if (dup !== undefined) at.at('portLevelSettings').error(`port ${dup} has more than one port-level policy`);
  if (p.tunnel) {
    const protocol = p.tunnel.protocol;
    if (protocol !== undefined && protocol !== 'CONNECT' && protocol !== 'POST') {
      at.at('tunnel', 'protocol').error(`must be "CONNECT" or "POST", got "${protocol}"`);
    }
    if (!isIP(p.tunnel.targetHost) && fqdn(p.tunnel.targetHost)) {
      at.at('tunnel', 'targetHost').error(`"${p.tunnel.targetHost}" is not a valid host name or IP address`);
    }
  }
}

function checkOutlierDetection(o: OutlierDetection, at: Checker): void {
  if (o.consecutiveErrors !== undefined) {
    at.at('consecutiveErrors').warn(
      '"consecutiveErrors" is deprecated; use consecutiveGatewayErrors or consecutive5xxErrors',
    );
  }
  if ((o.consecutiveLocalOriginFailures ?? 0) > 0 && !o.splitExternalLocalOriginErrors) {
    at.at('consecutiveLocalOriginFailures').error(
      'only takes effect with splitExternalLocalOriginErrors: true',
    );
  }
}

export function checkConnectionPool(c: ConnectionPoolSettings, at: Checker): void {
  if (!c.http && !c.tcp) at.error('a connection pool needs tcp or http settings');
  if (c.http?.h2UpgradePolicy === 'UPGRADE' && c.http.useClientProtocol) {
    at.at('http', 'useClientProtocol').error('cannot be true when h2UpgradePolicy is UPGRADE');
  }
  const ka = c.tcp?.tcpKeepalive;
  if (ka) checkKeepalive(ka, at.at('tcp', 'tcpKeepalive'));
}

/**
 * The kernel's bounds for TCP keepalive (Linux: at most 127 probes, at most
 * 32767 s idle or between probes): beyond them no socket can take the
 * setting, so the proxies would refuse every cluster config carrying it.
 */
function checkKeepalive(ka: TCPKeepalive, at: Checker): void {
  if (ka.probes !== undefined && ka.probes > 127)
    at.at('probes').error(`must be at most 127, got ${ka.probes}`);
  for (const field of ['time', 'interval'] as const) {
    const value = ka[field];
    if (value === undefined || !isValidDuration(value)) continue;
    const seconds = Math.floor(parseDuration(value) / 1000);
    if (seconds > 32_767) at.at(field).error(`must be at most 32767s, got ${value}`);
  }
}

function checkLoadBalancer(
  lb: LoadBalancerSettings,
  at: Checker,
  outlier: OutlierDetection | undefined,
): void {
  if (lb.simple !== undefined && lb.consistentHash !== undefined)
    at.error('only one of simple or consistentHash may be set');
  if (lb.warmup !== undefined && lb.warmupDurationSecs !== undefined)
    at.error('only one of warmup or warmupDurationSecs may be set');
  const ch = lb.consistentHash;
  if (ch) {
    const here = at.at('consistentHash');
    const keys = (['httpHeaderName', 'httpCookie', 'useSourceIp', 'httpQueryParameterName'] as const).filter(
      (k) => ch[k] !== undefined,
    );
    if (keys.length === 0)
      here.error('set one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName');
    if (keys.length > 1) here.error(`only one hash key may be set, found ${keys.join(' and ')}`);
    if (ch.httpCookie && ch.httpCookie.name === '') here.at('httpCookie', 'name').error('must not be empty');
    for (const [i, a] of (ch.httpCookie?.attributes ?? []).entries()) {
      // Each becomes "; name=value" in the Set-Cookie header the proxy sends.
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(a.name))
        here.at('httpCookie', 'attributes', i, 'name').error(`"${a.name}" is not a cookie attribute name`);
      if (a.value !== undefined && /[;\r\n]/.test(a.value))
        here.at('httpCookie', 'attributes', i, 'value').error('must not contain ";" or line breaks');
    }
    if (ch.ringHash && ch.maglev) here.error('only one of ringHash or maglev may be set');
    const ring = ch.ringHash?.minimumRingSize ?? ch.minimumRingSize;
    if (ring !== undefined && ring > 8_388_608) {
      const field = ch.ringHash ? here.at('ringHash', 'minimumRingSize') : here.at('minimumRingSize');
      field.error(`must be at most 8388608 (Envoy's largest ring), got ${ring}`);
    }
    if (ch.minimumRingSize !== undefined) {
      if (ch.ringHash || ch.maglev)
        here.at('minimumRingSize').error('cannot be combined with ringHash or maglev');
      else here.at('minimumRingSize').warn('"minimumRingSize" is deprecated; use ringHash.minimumRingSize');
    }
    const size = ch.maglev?.tableSize;
    if (ch.maglev) {
      if (size === undefined || size === 0)
        here.at('maglev', 'tableSize').error('tableSize is required for maglev');
      else if (size >= 5_000_011)
        here.at('maglev', 'tableSize').error(`must be less than 5000011, got ${size}`);
      else if (!isPrime(size)) here.at('maglev', 'tableSize').error(`must be a prime number, got ${size}`);
    }
  }
  if (lb.localityLbSetting) checkLocalityLb(lb.localityLbSetting, at.at('localityLbSetting'), outlier);
}

function isPrime(n: number): boolean {
  if (n < 2) return false;
  if (n < 4) return true;
  if (n % 2 === 0) return false;
  for (let f = 3; f * f <= n; f += 2) if (n % f === 0) return false;
  return true;
}

function localityProblem(locality: string | undefined): string | undefined {
  if (locality === undefined || locality === '') return 'a locality is required';
  const parts = locality.split('/');
  if (parts.length > 3) return `"${locality}" is not a locality (region/zone/subzone)`;
  if (parts.some((p) => p === '')) return `"${locality}" has an empty part`;
  if (parts.slice(0, -1).includes('*') || parts.some((p) => p.includes('*') && p !== '*')) {
    return `"${locality}": "*" may only be the last part, on its own`;
  }
  return undefined;
}

const TOPOLOGY_LABELS = [
  'topology.kubernetes.io/region',
  'topology.kubernetes.io/zone',
  'topology.istio.io/subzone',
];

/**
 * Istio's validateLocalities: no locality may cover another one listed
 * before it (`us-east/*` then `us-east/zone1`, or anything after `*`).
 */
function overlapProblem(localities: readonly string[]): string | undefined {
  const seen: string[][] = [];
  for (const loc of localities) {
    const parts = loc.split('/').filter((p) => p !== '*');
    for (const prev of seen) {
      const n = Math.min(prev.length, parts.length);
      if (prev.slice(0, n).join('/') === parts.slice(0, n).join('/'))
        return `"${loc}" overlaps a locality listed before it`;
    }
    seen.push(parts);
  }
  return undefined;
}

function checkLocalityLb(
  l: LocalityLoadBalancerSetting,
  at: Checker,
  outlier: OutlierDetection | undefined,
): void {
  if (l.distribute?.length && l.failover?.length) {
    at.error('only one of distribute or failover may be set');
    return;
  }
  for (const [i, d] of (l.distribute ?? []).entries()) {
    const here = at.at('distribute', i);
    here.at('from').check(localityProblem(d.from));
    let total = 0;
    for (const [loc, weight] of Object.entries(d.to ?? {})) {
      here.at('to', loc).check(localityProblem(loc));
      if (weight < 1 || weight > 100)
        here.at('to', loc).error(`weight must be between 1 and 100, got ${weight}`);
      total += weight;
    }
    if (total !== 100) here.at('to').error(`locality weights must add up to 100, got ${total}`);
    here.at('to').check(overlapProblem(Object.keys(d.to ?? {})));
  }
  if (l.distribute?.length) at.at('distribute').check(overlapProblem(l.distribute.map((d) => d.from ?? '')));
  for (const [i, f] of (l.failover ?? []).entries()) {
    const here = at.at('failover', i);
    if (!f.from || !f.to) here.error('from and to regions are required');
    else if (f.from === f.to) here.error('from and to must be different regions');
    for (const side of ['from', 'to'] as const) {
      const v = f[side] ?? '';
      if (v.includes('/')) here.at(side).error('failover names regions only (no zone)');
      if (v.includes('*')) here.at(side).error('failover regions cannot contain "*"');
    }
    if (l.failoverPriority?.some((p) => TOPOLOGY_LABELS.includes(p))) {
      here.error('failover cannot be combined with topology labels in failoverPriority');
    }
  }
  if ((l.failover?.length || l.failoverPriority?.length) && !outlier) {
    at.warn('locality failover only happens with outlierDetection set in the same traffic policy');
  }
}

function checkClientTls(t: ClientTLSSettings, at: Checker): void {
  const mode = t.mode ?? 'DISABLE';
  if ((mode === 'SIMPLE' || mode === 'MUTUAL') && t.credentialName) {
    for (const f of ['clientCertificate', 'privateKey', 'caCertificates', 'caCrl'] as const) {
      if (t[f] !== undefined)
        at.at(f).error('cannot be set together with credentialName (the credential holds it)');
    }
    return;
  }
  if (mode === 'MUTUAL') {
    if (!t.clientCertificate)
      at.at('clientCertificate').error('MUTUAL TLS needs a client certificate (or a credentialName)');
    if (!t.privateKey) at.at('privateKey').error('MUTUAL TLS needs a private key (or a credentialName)');
  }
  if (t.insecureSkipVerify && (t.caCertificates || t.subjectAltNames?.length)) {
    at.at('insecureSkipVerify').error(
      'cannot skip verification and also set caCertificates or subjectAltNames',
    );
  }
}

export const destinationRule: KindValidation<DestinationRuleSpec> = {
  schema: destinationRuleSchema,
  check: checkDestinationRule,
};
