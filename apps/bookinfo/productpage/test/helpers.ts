import type { RunningService } from '@mizzen/bookinfo-common';
import { type ForwardProxy, startForwardProxy } from '@mizzen/bookinfo-common/testing';
import { startServer as startDetails } from '@mizzen/bookinfo-details/server';
import { startServer as startRatings } from '@mizzen/bookinfo-ratings/server';
import { type ReviewsVersion, startServer as startReviews } from '@mizzen/bookinfo-reviews/server';
import type { ProductpageConfig } from '../src/config.js';
import { startServer } from '../src/server.js';

export const LOCAL = { host: '127.0.0.1', port: 0 };

/**
 * Real Bookinfo: details, ratings and reviews v1/v2/v3 on free ports, a
 * forward proxy standing in for productpage's sidecar that routes the
 * Kubernetes-style names to them, and productpage using it as HTTP_PROXY.
 */
export interface Bookinfo {
  productpage: RunningService;
  proxy: ForwardProxy;
  details: RunningService;
  ratings: RunningService;
  reviews: Record<ReviewsVersion, RunningService>;
  /** Sends every reviews:9080 call to one version (the test's stand-in for a VirtualService). */
  routeReviews(version: ReviewsVersion): void;
  /** Starts another productpage on the same proxy, with config overrides. */
  startProductpage(overrides?: Partial<ProductpageConfig>): Promise<RunningService>;
  close(): Promise<void>;
}

export async function startBookinfo(): Promise<Bookinfo> {
  const running: RunningService[] = [];
  const track = async (p: Promise<RunningService>) => {
    const s = await p;
    running.push(s);
    return s;
  };
  const details = await track(startDetails({ listen: LOCAL, logLevel: 'silent' }));
  const ratings = await track(startRatings({ listen: LOCAL, logLevel: 'silent' }));
  const reviews = {} as Record<ReviewsVersion, RunningService>;
  for (const version of ['v1', 'v2', 'v3'] as const) {
    reviews[version] = await track(
      startReviews({
        listen: LOCAL,
        logLevel: 'silent',
        proxy: { noProxy: '' },
        version,
        podName: `reviews-${version}`,
        clusterName: 'null',
        ratingsUrl: ratings.url,
        ratingsTimeoutMs: 2500,
      }),
    );
  }
  const proxy = await startForwardProxy({
    'details:9080': details.url,
    'ratings:9080': ratings.url,
    'reviews:9080': reviews.v1.url,
  });
  const startProductpage = (overrides: Partial<ProductpageConfig> = {}) =>
    track(
      startServer({
        listen: LOCAL,
        logLevel: 'silent',
        proxy: { httpProxy: proxy.url, noProxy: '' },
        services: {
          details: 'http://details:9080',
          reviews: 'http://reviews:9080',
          ratings: 'http://ratings:9080',
        },
        timeoutMs: 3000,
        ...overrides,
      }),
    );
  const productpage = await startProductpage();
  return {
    productpage,
    proxy,
    details,
    ratings,
    reviews,
    routeReviews: (version) => proxy.route('reviews:9080', reviews[version].url),
    startProductpage,
    close: async () => {
      await Promise.all(running.map((s) => s.close()));
      await proxy.close();
    },
  };
}
