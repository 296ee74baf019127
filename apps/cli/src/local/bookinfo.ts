/** The Bookinfo workloads `mizzen up` runs, each beside its own sidecar. */
export interface Workload {
  name: string;
  app: string;
  version: string;
  /** The package whose dist/main.js runs the app. */
  pkg: string;
  env: Record<string, string>;
}

export const BOOKINFO_SERVICE_PORT = 9080;

export const BOOKINFO_WORKLOADS: readonly Workload[] = [
  { name: 'details-v1', app: 'details', version: 'v1', pkg: '@mizzen/bookinfo-details', env: {} },
  { name: 'ratings-v1', app: 'ratings', version: 'v1', pkg: '@mizzen/bookinfo-ratings', env: {} },
  { name: 'reviews-v1', app: 'reviews', version: 'v1', pkg: '@mizzen/bookinfo-reviews', env: {} },
  { name: 'reviews-v2', app: 'reviews', version: 'v2', pkg: '@mizzen/bookinfo-reviews', env: {} },
  { name: 'reviews-v3', app: 'reviews', version: 'v3', pkg: '@mizzen/bookinfo-reviews', env: {} },
  { name: 'productpage-v1', app: 'productpage', version: 'v1', pkg: '@mizzen/bookinfo-productpage', env: {} },
];
