import type { ResourceSet } from '@mizzen/xds';
import { grpcListenerName } from '../model/names.js';
import type { ProxyInfo } from '../model/proxy.js';
import { buildOutboundClusters } from './clusters.js';
import { serviceDomains } from './domains.js';
import { resourceSet } from './endpoints.js';
import { ADS_CONFIG_SOURCE, HCM_TYPE, type Json, outboundHttpFilters } from './envoy.js';
import { defaultRouteFor, translateHttpRoutes } from './http-routes.js';
import type { PushContext } from './push-context.js';

/**
 * Resources for proxyless gRPC clients (`GENERATOR: grpc`): for every service
 * port an API listener named `host:port` whose HTTP connection manager points
 * at a route table of the same name — the names grpc-js-xds asks for when it
 * resolves `xds:///host:port`. The server sends only what each client asks for.
 */
export function buildProxylessResources(push: PushContext, proxy: ProxyInfo): ResourceSet {
  const listeners: Json[] = [];
  const routes: Json[] = [];
  for (const service of push.servicesFor(proxy)) {
    for (const port of service.ports) {
      const name = grpcListenerName(service.hostname, port.port);
      listeners.push({
        name,
        api_listener: {
          api_listener: {
            '@type': HCM_TYPE,
            stat_prefix: name,
            rds: { route_config_name: name, config_source: ADS_CONFIG_SOURCE },
            http_filters: outboundHttpFilters(true),
          },
        },
      });
      const vs = push.virtualServiceFor(proxy, service.hostname);
      const routeList = vs
        ? translateHttpRoutes(vs, {
            push,
            proxy,
            gateway: 'mesh',
            matchPort: port.port,
            listenerPort: port.port,
            proxyless: true,
          })
        : [defaultRouteFor(push, proxy, service, port.port, true)];
      routes.push({
        name,
        virtual_hosts: [
          {
            name,
            domains: serviceDomains(service, port.port, proxy.namespace, push.mesh.domainSuffix),
            routes: routeList,
          },
        ],
      });
    }
  }
  const clusters = buildOutboundClusters(push, proxy);
  return resourceSet(push, proxy, { listeners, routes, clusters });
}
