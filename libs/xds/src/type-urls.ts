/** The xDS resource types Mizzen serves, by type URL, and their short names. */
export const TypeUrl = {
  Listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  RouteConfiguration: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  Cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  ClusterLoadAssignment: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  Secret: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret',
} as const;

export type TypeUrl = (typeof TypeUrl)[keyof typeof TypeUrl];

export type ShortType = 'LDS' | 'RDS' | 'CDS' | 'EDS' | 'SDS';

const SHORT: Record<TypeUrl, ShortType> = {
  [TypeUrl.Listener]: 'LDS',
  [TypeUrl.RouteConfiguration]: 'RDS',
  [TypeUrl.Cluster]: 'CDS',
  [TypeUrl.ClusterLoadAssignment]: 'EDS',
  [TypeUrl.Secret]: 'SDS',
};

/**
 * Push order that keeps config consistent while it changes (Envoy's
 * make-before-break advice): secrets and clusters before the endpoints they
 * use, listeners before the routes they name.
 */
export const PUSH_ORDER: readonly TypeUrl[] = [
  TypeUrl.Secret,
  TypeUrl.Cluster,
  TypeUrl.ClusterLoadAssignment,
  TypeUrl.Listener,
  TypeUrl.RouteConfiguration,
];

/** Types whose empty subscription means "everything" (state-of-the-world wildcard). */
export const WILDCARD_TYPES: ReadonlySet<string> = new Set([TypeUrl.Listener, TypeUrl.Cluster]);

export function shortType(typeUrl: string): ShortType | string {
  return SHORT[typeUrl as TypeUrl] ?? typeUrl;
}

export function isTypeUrl(value: string): value is TypeUrl {
  return value in SHORT;
}

/** The name field that identifies a resource of the given type. */
export function resourceName(typeUrl: TypeUrl, resource: Record<string, unknown>): string {
  const key = typeUrl === TypeUrl.ClusterLoadAssignment ? 'cluster_name' : 'name';
  const name = resource[key];
  if (typeof name !== 'string' || name === '') {
    throw new Error(`${shortType(typeUrl)} resource has no ${key}`);
  }
  return name;
}
