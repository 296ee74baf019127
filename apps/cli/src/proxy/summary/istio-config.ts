import type { Json } from '../config-dump.js';

const CONFIG_PATH = /^\/apis\/networking\.istio\.io\/[^/]+\/namespaces\/([^/]+)\/[^/]+\/([^/]+)$/;

/**
 * The Istio resource that made an xDS resource, from its
 * `metadata.filter_metadata.istio.config` (`/apis/networking.istio.io/v1/
 * namespaces/default/destination-rule/reviews`), as istioctl shows it:
 * `reviews.default`; empty when none made it.
 */
export function istioConfigName(metadata: unknown): string {
  const config = ((metadata as Json | undefined)?.filter_metadata as Json | undefined)?.istio as
    | Json
    | undefined;
  if (typeof config?.config !== 'string') return '';
  const m = CONFIG_PATH.exec(config.config);
  return m ? `${m[2]}.${m[1]}` : '<unknown>';
}
