import { type CallerConfig, type Env, readCallerConfig, serviceUrl } from '@mizzen/bookinfo-common';

/** How long productpage waits for details, reviews or ratings, as Bookinfo's productpage does. */
export const UPSTREAM_TIMEOUT_MS = 3000;

export interface ServiceUrls {
  /** Base URLs, e.g. http://details:9080. */
  details: string;
  reviews: string;
  ratings: string;
}

export interface ProductpageConfig extends CallerConfig {
  services: ServiceUrls;
  timeoutMs: number;
}

export function loadConfig(env: Env): ProductpageConfig {
  return {
    ...readCallerConfig(env),
    services: {
      details: serviceUrl(env, 'details'),
      reviews: serviceUrl(env, 'reviews'),
      ratings: serviceUrl(env, 'ratings'),
    },
    timeoutMs: UPSTREAM_TIMEOUT_MS,
  };
}
