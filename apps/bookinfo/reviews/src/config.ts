import os from 'node:os';
import {
  type CallerConfig,
  ConfigError,
  type Env,
  readCallerConfig,
  serviceUrl,
} from '@mizzen/bookinfo-common';

/** v1 shows no ratings, v2 black stars, v3 red stars. */
export type ReviewsVersion = 'v1' | 'v2' | 'v3';
const VERSIONS: readonly ReviewsVersion[] = ['v1', 'v2', 'v3'];

/** How long reviews waits for ratings, like the Bookinfo reviews service. */
export const RATINGS_TIMEOUT_MS = 2500;

export interface ReviewsConfig extends CallerConfig {
  version: ReviewsVersion;
  /** Reported as `podname` in every answer. */
  podName: string;
  /** Reported as `clustername`; the string 'null' when unset, as the Bookinfo service does. */
  clusterName: string;
  /** Base URL of ratings, e.g. http://ratings:9080. */
  ratingsUrl: string;
  ratingsTimeoutMs: number;
}

export function loadConfig(env: Env): ReviewsConfig {
  const raw = env.SERVICE_VERSION?.trim();
  const version = VERSIONS.find((v) => v === raw);
  if (!version) {
    throw new ConfigError(
      raw
        ? `SERVICE_VERSION must be v1, v2 or v3, got '${raw}'`
        : 'SERVICE_VERSION must be set to v1, v2 or v3',
    );
  }
  return {
    ...readCallerConfig(env),
    version,
    podName: env.POD_NAME?.trim() || env.HOSTNAME?.trim() || os.hostname(),
    clusterName: env.CLUSTER_NAME?.trim() || 'null',
    ratingsUrl: serviceUrl(env, 'ratings'),
    ratingsTimeoutMs: RATINGS_TIMEOUT_MS,
  };
}
