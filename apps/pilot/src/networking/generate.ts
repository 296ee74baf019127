import type { ResourceSet } from '@mizzen/xds';
import type { ProxyInfo } from '../model/proxy.js';
import { buildGatewayResources } from './gateway.js';
import { buildProxylessResources } from './grpc.js';
import type { PushContext } from './push-context.js';
import { buildSidecarResources } from './sidecar.js';

/** The full xDS resource set for one proxy, by kind: one builder per proxy type. */
export function generateResources(push: PushContext, proxy: ProxyInfo): ResourceSet {
  if (proxy.proxyless) return buildProxylessResources(push, proxy);
  if (proxy.type === 'router') return buildGatewayResources(push, proxy);
  return buildSidecarResources(push, proxy);
}
