import { histogramQuantile } from './histogram.js';
import {
  type EntryDelta,
  type IntervalRecord,
  isError,
  isUnknown,
  labelOf,
  neverReachedDestination,
} from './model.js';

/**
 * The service graph and golden signals, computed the way Kiali computes them
 * from Prometheus: per-proxy counter increases turned into rates, summed by
 * edge; error rate as the 5xx (and gRPC non-OK) share; p50/p90/p99 with
 * `histogram_quantile` over the summed bucket rates; mTLS from
 * `connection_security_policy`.
 *
 * Which reporter counts: a request into a meshed workload is counted once,
 * from the destination proxy's report (`reporter="destination"`), which sees
 * every caller including unmeshed ones. The source proxy's report is used
 * when the destination has no proxy (an external or unmeshed service), and
 * for requests that never reached the destination (response flags such as
 * FI, UH, UF, UO, NR: a fault-injected abort, no healthy upstream, an open
 * circuit), which only the source proxy saw.
 */

/** A workload known to run a proxy, by `namespace/workload`. */
export interface KnownProxy {
  namespace: string;
  workload: string;
  kind: 'sidecar' | 'ingress' | 'egress';
}

export interface LatencyMs {
  p50: number | null;
  p90: number | null;
  p99: number | null;
  mean: number | null;
}

export interface TrafficStats {
  /** Requests counted in the window (sum of counter increases). */
  requests: number;
  /**
   * Requests over the time the reporting proxies were observed in the window
   * (as Prometheus's rate() over the samples it has): a collector that
   * started a minute ago gives a minute's rate, not the window's.
   */
  requestsPerSecond: number;
  /** How much of the window the reporting proxies were observed for, in seconds (null with no data). */
  observedSeconds: number | null;
  errors: number;
  errorsPerSecond: number;
  /** Share of requests that failed (0..1); null without requests. */
  errorRate: number | null;
  /** Requests in the window by response code. */
  responseCodes: Record<string, number>;
  /** Requests in the window by response flags (only flagged ones). */
  responseFlags: Record<string, number>;
  latencyMs: LatencyMs;
  requestBytesPerSecond: number;
  responseBytesPerSecond: number;
  tcp: {
    sentBytesPerSecond: number;
    receivedBytesPerSecond: number;
    connectionsOpenedPerSecond: number;
    connectionsClosedPerSecond: number;
  } | null;
  mtls: {
    /** Share of traffic with connection_security_policy=mutual_tls, 0..100; null when unknown. */
    percent: number | null;
    status: 'full' | 'partial' | 'none' | 'unknown';
  };
  protocols: string[];
}

export type NodeKind = 'workload' | 'service' | 'unknown';

export interface GraphNode {
  id: string;
  kind: NodeKind;
  name: string;
  namespace: string;
  app?: string;
  version?: string;
  /** Service nodes: the destination_service host. */
  host?: string;
  /** A proxy runs beside it (workloads), or a meshed workload serves it (services). */
  meshed: boolean;
  gateway?: boolean;
  /** What it received in the window. */
  inbound: TrafficStats;
  /** Requests per second it sent. */
  outboundRequestsPerSecond: number;
}

export interface GraphEdge extends TrafficStats {
  id: string;
  source: string;
  target: string;
  reporters: string[];
}

export interface ServiceGraph {
  fromMs: number;
  toMs: number;
  nodes: GraphNode[];
  edges: GraphEdge[];
}

class Accumulator {
  requests = 0;
  requestRate = 0;
  errors = 0;
  errorRate = 0;
  codes: Record<string, number> = {};
  flags: Record<string, number> = {};
  buckets = new Map<string, number>();
  durationSum = 0;
  durationCount = 0;
  requestBytes = 0;
  responseBytes = 0;
  tcpSent = 0;
  tcpReceived = 0;
  tcpOpened = 0;
  tcpClosed = 0;
  hasTcp = false;
  mtls = 0;
  plain = 0;
  protocols = new Set<string>();
  reporters = new Set<string>();
  /** The longest time a contributing proxy was observed (the rates' denominator), ms. */
  observedMs = 0;

  add(entry: EntryDelta, perSecond: number): void {
    const requests = entry.requests ?? 0;
    this.observedMs = Math.max(this.observedMs, 1000 / perSecond);
    const protocol = labelOf(entry, 'request_protocol');
    if (protocol) this.protocols.add(protocol);
    this.reporters.add(labelOf(entry, 'reporter'));
    if (requests > 0) {
      this.requests += requests;
      this.requestRate += requests * perSecond;
      const code = labelOf(entry, 'response_code') || 'unknown';
      this.codes[code] = (this.codes[code] ?? 0) + requests;
      const flags = labelOf(entry, 'response_flags');
      if (flags && flags !== '-') this.flags[flags] = (this.flags[flags] ?? 0) + requests;
      if (isError(entry)) {
        this.errors += requests;
        this.errorRate += requests * perSecond;
      }
    }
    if (entry.buckets) {
      for (const [le, n] of Object.entries(entry.buckets)) {
        this.buckets.set(le, (this.buckets.get(le) ?? 0) + n * perSecond);
      }
    }
    this.durationSum += (entry.durationSum ?? 0) * perSecond;
    this.durationCount += (entry.durationCount ?? 0) * perSecond;
    this.requestBytes += (entry.requestBytes ?? 0) * perSecond;
    this.responseBytes += (entry.responseBytes ?? 0) * perSecond;
    if (entry.tcpSent || entry.tcpReceived || entry.tcpOpened || entry.tcpClosed) {
      this.hasTcp = true;
      this.tcpSent += (entry.tcpSent ?? 0) * perSecond;
      this.tcpReceived += (entry.tcpReceived ?? 0) * perSecond;
      this.tcpOpened += (entry.tcpOpened ?? 0) * perSecond;
      this.tcpClosed += (entry.tcpClosed ?? 0) * perSecond;
    }
    const policy = labelOf(entry, 'connection_security_policy');
    const weight = requests + (entry.tcpOpened ?? 0) || 1;
    if (policy === 'mutual_tls') this.mtls += weight;
    else if (policy === 'none') this.plain += weight;
  }

  stats(): TrafficStats {
    const quantile = (q: number) => histogramQuantile(q, this.buckets);
    const known = this.mtls + this.plain;
    const percent = known > 0 ? (100 * this.mtls) / known : null;
    return {
      requests: round(this.requests),
      requestsPerSecond: this.requestRate,
      observedSeconds: this.observedMs > 0 ? round(this.observedMs / 1000) : null,
      errors: round(this.errors),
      errorsPerSecond: this.errorRate,
      errorRate: this.requestRate > 0 ? this.errorRate / this.requestRate : null,
      responseCodes: this.codes,
      responseFlags: this.flags,
      latencyMs: {
        p50: quantile(0.5),
        p90: quantile(0.9),
        p99: quantile(0.99),
        mean: this.durationCount > 0 ? this.durationSum / this.durationCount : null,
      },
      requestBytesPerSecond: this.requestBytes,
      responseBytesPerSecond: this.responseBytes,
      tcp: this.hasTcp
        ? {
            sentBytesPerSecond: this.tcpSent,
            receivedBytesPerSecond: this.tcpReceived,
            connectionsOpenedPerSecond: this.tcpOpened,
            connectionsClosedPerSecond: this.tcpClosed,
          }
        : null,
      mtls: {
        percent,
        status: percent === null ? 'unknown' : percent >= 100 ? 'full' : percent > 0 ? 'partial' : 'none',
      },
      protocols: [...this.protocols].sort(),
    };
  }
}

function round(n: number): number {
  return Math.round(n * 1e6) / 1e6;
}

const key = (namespace: string, name: string) => `${namespace}/${name}`;

/** Destination workloads that report their own inbound traffic: proxies from pilot and any destination reporter seen. */
export function meshedWorkloads(
  records: readonly IntervalRecord[],
  proxies: readonly KnownProxy[],
): Set<string> {
  const meshed = new Set(proxies.map((p) => key(p.namespace, p.workload)));
  for (const r of records) {
    for (const e of r.entries) {
      if (labelOf(e, 'reporter') === 'destination') {
        meshed.add(key(labelOf(e, 'destination_workload_namespace'), labelOf(e, 'destination_workload')));
      }
    }
  }
  return meshed;
}

export interface Contribution {
  entry: EntryDelta;
  /** 1 / seconds this entry's proxy was observed in the window: multiplying a count by it gives a rate. */
  perSecond: number;
  record: IntervalRecord;
}

/** The entries that count (see the reporter rule above), each with its rate factor. */
export function contributions(
  records: readonly IntervalRecord[],
  meshed: ReadonlySet<string>,
): Contribution[] {
  const spanMs = new Map<string, number>();
  for (const r of records) spanMs.set(r.target, (spanMs.get(r.target) ?? 0) + Math.max(0, r.t2 - r.t1));
  const out: Contribution[] = [];
  for (const record of records) {
    const span = spanMs.get(record.target) ?? 0;
    if (span <= 0) continue;
    const perSecond = 1000 / span;
    for (const entry of record.entries) {
      if (counts(entry, meshed)) out.push({ entry, perSecond, record });
    }
  }
  return out;
}

function counts(entry: EntryDelta, meshed: ReadonlySet<string>): boolean {
  const reporter = labelOf(entry, 'reporter');
  if (reporter === 'destination') return true;
  if (reporter !== 'source') return false;
  const workload = labelOf(entry, 'destination_workload');
  if (isUnknown(workload)) return true;
  if (!meshed.has(key(labelOf(entry, 'destination_workload_namespace'), workload))) return true;
  return neverReachedDestination(labelOf(entry, 'response_flags'));
}

interface Endpoints {
  source: { id: string; node: Omit<GraphNode, 'inbound' | 'outboundRequestsPerSecond'> };
  service?: { id: string; node: Omit<GraphNode, 'inbound' | 'outboundRequestsPerSecond'> };
  destination?: { id: string; node: Omit<GraphNode, 'inbound' | 'outboundRequestsPerSecond'> };
}

/** Service identity of an entry's destination: name and namespace, derived from the host when labels are missing. */
export function serviceOf(entry: EntryDelta): { namespace: string; name: string; host: string } | undefined {
  const host = labelOf(entry, 'destination_service');
  let name = labelOf(entry, 'destination_service_name');
  let namespace = labelOf(entry, 'destination_service_namespace');
  if (isUnknown(name)) {
    if (isUnknown(host)) return undefined;
    const m = /^([^.]+)\.([^.]+)\.svc(\.|$)/.exec(host);
    name = m ? m[1]! : host;
    if (isUnknown(namespace)) namespace = m ? m[2]! : '';
  }
  if (isUnknown(namespace)) namespace = '';
  return { namespace, name, host: isUnknown(host) ? name : host };
}

function endpointsOf(
  entry: EntryDelta,
  meshed: ReadonlySet<string>,
  gateways: ReadonlySet<string>,
): Endpoints {
  const srcName = labelOf(entry, 'source_workload');
  const srcNs = labelOf(entry, 'source_workload_namespace');
  const source = isUnknown(srcName)
    ? {
        id: 'unknown',
        node: { id: 'unknown', kind: 'unknown' as const, name: 'unknown', namespace: '', meshed: false },
      }
    : {
        id: `workload:${key(srcNs, srcName)}`,
        node: {
          id: `workload:${key(srcNs, srcName)}`,
          kind: 'workload' as const,
          name: srcName,
          namespace: srcNs,
          app: orUndefined(labelOf(entry, 'source_app') || labelOf(entry, 'source_canonical_service')),
          version: orUndefined(labelOf(entry, 'source_version')),
          meshed: meshed.has(key(srcNs, srcName)) || labelOf(entry, 'reporter') === 'source',
          gateway: gateways.has(key(srcNs, srcName)) || undefined,
        },
      };
  const svc = serviceOf(entry);
  const dstName = labelOf(entry, 'destination_workload');
  const dstNs = labelOf(entry, 'destination_workload_namespace');
  const out: Endpoints = { source };
  if (svc) {
    const id = `service:${key(svc.namespace, svc.name)}`;
    out.service = {
      id,
      node: {
        id,
        kind: 'service',
        name: svc.name,
        namespace: svc.namespace,
        host: svc.host,
        meshed: !isUnknown(dstName) && meshed.has(key(dstNs, dstName)),
      },
    };
  }
  if (!isUnknown(dstName)) {
    const id = `workload:${key(dstNs, dstName)}`;
    out.destination = {
      id,
      node: {
        id,
        kind: 'workload',
        name: dstName,
        namespace: dstNs,
        app: orUndefined(
          labelOf(entry, 'destination_app') || labelOf(entry, 'destination_canonical_service'),
        ),
        version: orUndefined(labelOf(entry, 'destination_version')),
        meshed: meshed.has(key(dstNs, dstName)),
        gateway: gateways.has(key(dstNs, dstName)) || undefined,
      },
    };
  }
  return out;
}

function orUndefined(v: string): string | undefined {
  return isUnknown(v) ? undefined : v;
}

/** The graph over the records whose interval ends inside the window. */
export function buildGraph(
  records: readonly IntervalRecord[],
  window: { fromMs: number; toMs: number },
  proxies: readonly KnownProxy[] = [],
): ServiceGraph {
  const inWindow = records.filter((r) => r.t2 > window.fromMs && r.t2 <= window.toMs);
  const meshed = meshedWorkloads(inWindow, proxies);
  const gateways = new Set(
    proxies.filter((p) => p.kind !== 'sidecar').map((p) => key(p.namespace, p.workload)),
  );
  const nodes = new Map<string, Omit<GraphNode, 'inbound' | 'outboundRequestsPerSecond'>>();
  const inbound = new Map<string, Accumulator>();
  const outbound = new Map<string, number>();
  const edges = new Map<string, { source: string; target: string; acc: Accumulator }>();
  const addEdge = (from: string, to: string, c: Contribution) => {
    const id = `${from}->${to}`;
    let edge = edges.get(id);
    if (!edge) {
      edge = { source: from, target: to, acc: new Accumulator() };
      edges.set(id, edge);
    }
    edge.acc.add(c.entry, c.perSecond);
  };
  const addNode = (n: Omit<GraphNode, 'inbound' | 'outboundRequestsPerSecond'>) => {
    const existing = nodes.get(n.id);
    if (!existing) nodes.set(n.id, { ...n });
    else {
      existing.meshed ||= n.meshed;
      existing.gateway ||= n.gateway;
      existing.app ??= n.app;
      existing.version ??= n.version;
      existing.host ??= n.host;
    }
  };
  for (const c of contributions(inWindow, meshed)) {
    const ends = endpointsOf(c.entry, meshed, gateways);
    addNode(ends.source.node);
    const hops: string[] = [ends.source.id];
    if (ends.service) {
      addNode(ends.service.node);
      hops.push(ends.service.id);
    }
    if (ends.destination) {
      addNode(ends.destination.node);
      hops.push(ends.destination.id);
    }
    for (let i = 1; i < hops.length; i++) {
      addEdge(hops[i - 1]!, hops[i]!, c);
      let acc = inbound.get(hops[i]!);
      if (!acc) {
        acc = new Accumulator();
        inbound.set(hops[i]!, acc);
      }
      acc.add(c.entry, c.perSecond);
    }
    outbound.set(ends.source.id, (outbound.get(ends.source.id) ?? 0) + (c.entry.requests ?? 0) * c.perSecond);
  }
  // Proxies with no traffic yet are still part of the mesh.
  for (const p of proxies) {
    const id = `workload:${key(p.namespace, p.workload)}`;
    addNode({
      id,
      kind: 'workload',
      name: p.workload,
      namespace: p.namespace,
      meshed: true,
      gateway: p.kind !== 'sidecar' || undefined,
    });
  }
  const empty = new Accumulator().stats();
  return {
    fromMs: window.fromMs,
    toMs: window.toMs,
    nodes: [...nodes.values()]
      .map((n) => ({
        ...n,
        inbound: inbound.get(n.id)?.stats() ?? empty,
        outboundRequestsPerSecond: outbound.get(n.id) ?? 0,
      }))
      .sort((a, b) => a.id.localeCompare(b.id)),
    edges: [...edges.entries()]
      .map(([id, e]) => {
        const stats = e.acc.stats();
        return { id, source: e.source, target: e.target, reporters: [...e.acc.reporters].sort(), ...stats };
      })
      .sort((a, b) => a.id.localeCompare(b.id)),
  };
}

export interface SignalSeries {
  fromMs: number;
  toMs: number;
  stepMs: number;
  /** End of each step, milliseconds since the epoch. */
  times: number[];
  requestsPerSecond: number[];
  errorRate: (number | null)[];
  p50: (number | null)[];
  p90: (number | null)[];
  p99: (number | null)[];
  requestBytesPerSecond: number[];
  responseBytesPerSecond: number[];
  /** Totals over the whole window. */
  summary: TrafficStats;
}

/**
 * Golden signals of the traffic an entry filter selects (a service's or a
 * workload's inbound requests) as time series: one point per step, each
 * computed from the records whose interval ends inside that step.
 */
export function signalSeries(
  records: readonly IntervalRecord[],
  window: { fromMs: number; toMs: number; stepMs: number },
  select: (entry: EntryDelta) => boolean,
  proxies: readonly KnownProxy[] = [],
): SignalSeries {
  const inWindow = records.filter((r) => r.t2 > window.fromMs && r.t2 <= window.toMs);
  const meshed = meshedWorkloads(inWindow, proxies);
  const steps = Math.max(1, Math.ceil((window.toMs - window.fromMs) / window.stepMs));
  const start = window.toMs - steps * window.stepMs;
  const slots: IntervalRecord[][] = Array.from({ length: steps }, () => []);
  for (const r of inWindow) {
    const i = Math.min(steps - 1, Math.max(0, Math.ceil((r.t2 - start) / window.stepMs) - 1));
    slots[i]!.push(r);
  }
  const out: SignalSeries = {
    fromMs: start,
    toMs: window.toMs,
    stepMs: window.stepMs,
    times: [],
    requestsPerSecond: [],
    errorRate: [],
    p50: [],
    p90: [],
    p99: [],
    requestBytesPerSecond: [],
    responseBytesPerSecond: [],
    summary: new Accumulator().stats(),
  };
  const total = new Accumulator();
  for (const c of contributions(inWindow, meshed)) if (select(c.entry)) total.add(c.entry, c.perSecond);
  out.summary = total.stats();
  slots.forEach((slot, i) => {
    const acc = new Accumulator();
    for (const c of contributions(slot, meshed)) if (select(c.entry)) acc.add(c.entry, c.perSecond);
    const s = acc.stats();
    out.times.push(start + (i + 1) * window.stepMs);
    out.requestsPerSecond.push(s.requestsPerSecond);
    out.errorRate.push(s.errorRate);
    out.p50.push(s.latencyMs.p50);
    out.p90.push(s.latencyMs.p90);
    out.p99.push(s.latencyMs.p99);
    out.requestBytesPerSecond.push(s.requestBytesPerSecond);
    out.responseBytesPerSecond.push(s.responseBytesPerSecond);
  });
  return out;
}

/** Entries whose destination is the service `namespace/name`. */
export function toService(namespace: string, name: string): (e: EntryDelta) => boolean {
  return (e) => {
    const svc = serviceOf(e);
    return svc !== undefined && svc.name === name && svc.namespace === namespace;
  };
}

/** Entries whose destination is the workload `namespace/name`. */
export function toWorkload(namespace: string, name: string): (e: EntryDelta) => boolean {
  return (e) =>
    labelOf(e, 'destination_workload') === name && labelOf(e, 'destination_workload_namespace') === namespace;
}
