import { durationToMs } from '@mizzen/xds';
import type { ClusterJson, ClusterLoadAssignmentJson, LbEndpointJson } from '../envoy/types.js';
import { fail } from './errors.js';

export type LbKind = 'round_robin' | 'least_request' | 'random';

/** One upstream address as EDS or a static load assignment gives it. */
export interface EndpointSpec {
  readonly address: string;
  readonly port: number;
  readonly weight: number;
  readonly healthy: boolean;
  /** `region/zone/subzone`, empty when unknown. */
  readonly locality: string;
}

export interface ClusterConfig {
  readonly name: string;
  readonly type: 'STATIC' | 'STRICT_DNS' | 'LOGICAL_DNS' | 'EDS' | 'ORIGINAL_DST';
  /** The ClusterLoadAssignment name an EDS cluster subscribes to. */
  readonly edsServiceName?: string;
  readonly connectTimeoutMs: number;
  readonly lb: LbKind;
  /** Endpoints given inline (STATIC and DNS clusters). */
  readonly endpoints?: readonly EndpointSpec[];
  readonly json: ClusterJson;
}

const LB: Partial<Record<string, LbKind>> = {
  ROUND_ROBIN: 'round_robin',
  LEAST_REQUEST: 'least_request',
  RANDOM: 'random',
};

/** Envoy's default connect timeout. */
const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;

function endpointSpec(e: LbEndpointJson, locality: string, where: string): EndpointSpec {
  const sa = e.endpoint?.address?.socket_address;
  if (!sa?.address) fail(where, 'endpoint has no socket address');
  const port = sa.port_value ?? 0;
  if (!(port > 0 && port < 65536)) fail(where, `endpoint ${sa.address} has invalid port ${port}`);
  const status = e.health_status ?? 'UNKNOWN';
  return {
    address: sa.address,
    port,
    weight: e.load_balancing_weight ?? 1,
    // Envoy routes to UNKNOWN and HEALTHY (and DEGRADED as a last resort); never to UNHEALTHY, DRAINING or TIMEOUT.
    healthy: status === 'UNKNOWN' || status === 'HEALTHY' || status === 'DEGRADED',
    locality,
  };
}

export function compileLoadAssignment(cla: ClusterLoadAssignmentJson, where: string): EndpointSpec[] {
  const out: EndpointSpec[] = [];
  (cla.endpoints ?? []).forEach((group, g) => {
    const l = group.locality;
    const locality =
      l && (l.region || l.zone || l.sub_zone) ? `${l.region ?? ''}/${l.zone ?? ''}/${l.sub_zone ?? ''}` : '';
    (group.lb_endpoints ?? []).forEach((e, i) => {
      out.push(endpointSpec(e, locality, `${where}.endpoints[${g}].lb_endpoints[${i}]`));
    });
  });
  return out;
}

export function compileCluster(c: ClusterJson): ClusterConfig {
  const where = `cluster ${c.name}`;
  if (!c.name) fail('cluster', 'has no name');
  const type = c.type ?? 'STATIC';
  const lbPolicy = c.lb_policy ?? 'ROUND_ROBIN';
  if (c.transport_socket) {
    // Sending plaintext where TLS was asked for would be a silent downgrade: refuse the cluster instead.
    fail(
      `${where}.transport_socket`,
      `transport socket ${c.transport_socket['@type']} is not supported by this proxy`,
    );
  }
  if (type === 'ORIGINAL_DST') {
    if (lbPolicy !== 'CLUSTER_PROVIDED')
      fail(`${where}.lb_policy`, 'ORIGINAL_DST clusters need lb_policy CLUSTER_PROVIDED');
  } else if (!LB[lbPolicy]) {
    fail(`${where}.lb_policy`, `load balancing policy ${lbPolicy} is not supported`);
  }
  let endpoints: EndpointSpec[] | undefined;
  if (type === 'STATIC' || type === 'STRICT_DNS' || type === 'LOGICAL_DNS') {
    endpoints = c.load_assignment ? compileLoadAssignment(c.load_assignment, `${where}.load_assignment`) : [];
  } else if (type !== 'EDS' && type !== 'ORIGINAL_DST') {
    fail(`${where}.type`, `cluster discovery type ${type} is not supported`);
  }
  const timeout =
    c.connect_timeout === undefined ? DEFAULT_CONNECT_TIMEOUT_MS : durationToMs(c.connect_timeout)!;
  return {
    name: c.name,
    type,
    edsServiceName: type === 'EDS' ? c.eds_cluster_config?.service_name || c.name : undefined,
    connectTimeoutMs: timeout > 0 ? timeout : DEFAULT_CONNECT_TIMEOUT_MS,
    lb: LB[lbPolicy] ?? 'round_robin',
    endpoints,
    json: c,
  };
}
