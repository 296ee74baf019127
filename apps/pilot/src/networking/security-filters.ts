import type { ConfigResource } from '@mizzen/api';
import {
  buildAuthorizationFilters,
  buildJwtAuthnFilter,
  defaultServiceResolver,
  formatIssue,
} from '@mizzen/policy';
import type { ProxyInfo } from '../model/proxy.js';
import type { Json } from './envoy.js';
import type { PushContext } from './push-context.js';

/** The request-path security of one workload, in Envoy's filter order. */
export interface WorkloadSecurityFilters {
  /** jwt_authn, then CUSTOM/DENY/ALLOW/AUDIT RBAC and ext_authz: HTTP filters to go before stats and the router. */
  http: Json[];
  /** Network RBAC before tcp_proxy (AuthorizationPolicy for TCP ports). */
  tcp: Json[];
}

/**
 * RequestAuthentication and AuthorizationPolicy for the workload behind
 * `proxy`, translated by libs/policy as Istio does: policies of its own
 * namespace and the root namespace, by selector (or targetRefs for gateways).
 * Gateways recompute the route after claims were copied to headers, as Istio
 * does, so VirtualServices can match on JWT claims there.
 */
export function securityFilters(push: PushContext, proxy: ProxyInfo): WorkloadSecurityFilters {
  const resources = push.resources as ConfigResource[];
  const workload = { namespace: proxy.namespace, labels: proxy.labels };
  const scope = { rootNamespace: push.mesh.rootNamespace };
  const jwt = buildJwtAuthnFilter(resources, workload, {
    ...scope,
    clearRouteCache: proxy.type === 'router',
  });
  const authz = buildAuthorizationFilters(resources, workload, {
    ...scope,
    meshConfig: { extensionProviders: push.mesh.authorizers ?? [] },
    resolveService: defaultServiceResolver(push.mesh.domainSuffix),
  });
  for (const issue of [...jwt.issues, ...authz.issues]) push.warnings.add(formatIssue(issue));
  // libs/policy types the filters precisely; here they are JSON going into listeners like any other.
  const json = (filters: readonly object[]) => filters as unknown as Json[];
  return {
    http: json([...(jwt.filter ? [jwt.filter] : []), ...authz.http]),
    tcp: json(authz.tcp),
  };
}
