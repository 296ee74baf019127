import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunningService } from '@mizzen/bookinfo-common';
import { type ForwardProxy, startForwardProxy, startStalledServer } from '@mizzen/bookinfo-common/testing';
import { startServer as startRatings } from '@mizzen/bookinfo-ratings/server';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type ReviewsConfig, type ReviewsVersion } from '../src/config.js';
import type { ReviewsAnswer } from '../src/reviews.js';
import { startServer } from '../src/server.js';

const TEXT1 = 'An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!';
const TEXT2 =
  'Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.';
const LOCAL = { host: '127.0.0.1', port: 0 };

function reviewsConfig(version: ReviewsVersion, overrides: Partial<ReviewsConfig> = {}): ReviewsConfig {
  return {
    listen: LOCAL,
    logLevel: 'silent',
    proxy: { noProxy: '' },
    version,
    podName: `reviews-${version}-test`,
    clusterName: 'null',
    ratingsUrl: 'http://ratings:9080',
    ratingsTimeoutMs: 2500,
    ...overrides,
  };
}

async function getReviews(
  service: RunningService,
  id: string | number,
  headers: Record<string, string> = {},
) {
  const res = await fetch(`${service.url}/reviews/${id}`, { headers });
  return { status: res.status, body: (await res.json()) as ReviewsAnswer };
}

describe('reviews with a real ratings service behind a forward proxy', () => {
  let ratings: RunningService;
  let proxy: ForwardProxy;
  const started: RunningService[] = [];

  const start = async (version: ReviewsVersion, overrides: Partial<ReviewsConfig> = {}) => {
    const service = await startServer(
      reviewsConfig(version, { proxy: { httpProxy: proxy.url, noProxy: '' }, ...overrides }),
    );
    started.push(service);
    return service;
  };

  beforeAll(async () => {
    ratings = await startRatings({ listen: LOCAL, logLevel: 'silent' });
    proxy = await startForwardProxy({ 'ratings:9080': ratings.url });
  });
  afterEach(async () => {
    await Promise.all(started.splice(0).map((s) => s.close()));
    proxy.requests.length = 0;
  });
  afterAll(async () => {
    await proxy?.close();
    await ratings?.close();
  });

  it('v1 answers both reviews without ratings and never calls ratings', async () => {
    const reviews = await start('v1');
    const { status, body } = await getReviews(reviews, 0);
    expect(status).toBe(200);
    expect(body).toEqual({
      id: '0',
      podname: 'reviews-v1-test',
      clustername: 'null',
      version: 'v1',
      reviews: [
        { reviewer: 'Reviewer1', text: TEXT1 },
        { reviewer: 'Reviewer2', text: TEXT2 },
      ],
    });
    expect(proxy.requests).toEqual([]);
  });

  it('v2 asks ratings through the proxy and draws black stars, forwarding the trace headers', async () => {
    const reviews = await start('v2');
    const headers = {
      'x-request-id': 'req-42',
      traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      'x-b3-traceid': '4bf92f3577b34da6a3ce929d0e0e4736',
      'end-user': 'jason',
      cookie: 'not=forwarded',
    };
    const { status, body } = await getReviews(reviews, 0, headers);
    expect(status).toBe(200);
    expect(body.version).toBe('v2');
    expect(body.reviews).toEqual([
      { reviewer: 'Reviewer1', text: TEXT1, rating: { stars: 5, color: 'black' } },
      { reviewer: 'Reviewer2', text: TEXT2, rating: { stars: 4, color: 'black' } },
    ]);
    expect(proxy.connects).toEqual([]);
    expect(proxy.requests).toHaveLength(1);
    const call = proxy.requests[0]!;
    expect(call.target).toBe('http://ratings:9080/ratings/0');
    expect(call.headers.host).toBe('ratings:9080');
    expect(call.headers['x-request-id']).toBe('req-42');
    expect(call.headers.traceparent).toBe(headers.traceparent);
    expect(call.headers['x-b3-traceid']).toBe(headers['x-b3-traceid']);
    expect(call.headers['end-user']).toBe('jason');
    expect(call.headers.cookie).toBeUndefined();
  });

  it('v3 draws red stars, and shows what ratings currently says', async () => {
    const reviews = await start('v3');
    const posted = await fetch(`${ratings.url}/ratings/7`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ Reviewer1: 2, Reviewer2: 1 }),
    });
    expect(posted.status).toBe(200);
    const { body } = await getReviews(reviews, 7);
    expect(body.id).toBe('7');
    expect(body.version).toBe('v3');
    expect(body.reviews.map((r) => r.rating)).toEqual([
      { stars: 2, color: 'red' },
      { stars: 1, color: 'red' },
    ]);
    expect(proxy.requests.map((r) => r.target)).toEqual(['http://ratings:9080/ratings/7']);
  });

  it('says ratings are unavailable, still with 200, when ratings is down or the proxy cannot reach it', async () => {
    const gone = await startRatings({ listen: LOCAL, logLevel: 'silent' });
    await gone.close();
    proxy.route('ratings-gone:9080', gone.url);
    for (const version of ['v2', 'v3'] as const) {
      const reviews = await start(version, { ratingsUrl: 'http://ratings-gone:9080' });
      const { status, body } = await getReviews(reviews, 0);
      expect(status).toBe(200);
      expect(body.reviews.map((r) => r.rating)).toEqual([
        { error: 'Ratings service is currently unavailable' },
        { error: 'Ratings service is currently unavailable' },
      ]);
    }
    // Without a proxy, straight to a closed port.
    const direct = await start('v2', { proxy: { noProxy: '' }, ratingsUrl: gone.url });
    const { body } = await getReviews(direct, 0);
    expect(body.reviews[0]?.rating).toEqual({ error: 'Ratings service is currently unavailable' });
  });

  it('gives up on a ratings service that does not answer within its timeout', async () => {
    const silent = await startStalledServer();
    try {
      const reviews = await start('v3', {
        proxy: { noProxy: '' },
        ratingsUrl: silent.url,
        ratingsTimeoutMs: 200,
      });
      const began = Date.now();
      const { status, body } = await getReviews(reviews, 0);
      expect(status).toBe(200);
      expect(body.reviews[1]?.rating).toEqual({ error: 'Ratings service is currently unavailable' });
      expect(Date.now() - began).toBeLessThan(2000);
    } finally {
      await silent.close();
    }
  });

  it('asks for a numeric product id, and reports health', async () => {
    const reviews = await start('v2');
    const res = await fetch(`${reviews.url}/reviews/zero`);
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: 'please provide numeric product id' });
    expect(await (await fetch(`${reviews.url}/health`)).json()).toEqual({ status: 'Reviews is healthy' });
    expect(proxy.requests).toEqual([]);
  });
});

describe('reviews configuration', () => {
  it('reads the version, pod and cluster names and where ratings is', () => {
    const config = loadConfig({
      SERVICE_VERSION: 'v3',
      POD_NAME: 'reviews-v3-abc',
      PORT: '9081',
      HTTP_PROXY: 'http://127.0.0.1:15001',
      SERVICES_DOMAIN: 'default.svc.cluster.local',
    });
    expect(config).toMatchObject({
      version: 'v3',
      podName: 'reviews-v3-abc',
      clusterName: 'null',
      ratingsUrl: 'http://ratings.default.svc.cluster.local:9080',
      ratingsTimeoutMs: 2500,
      listen: { host: '0.0.0.0', port: 9081 },
      proxy: { httpProxy: 'http://127.0.0.1:15001' },
    });
    expect(
      loadConfig({ SERVICE_VERSION: 'v1', RATINGS_HOSTNAME: 'stars', CLUSTER_NAME: 'east' }),
    ).toMatchObject({
      clusterName: 'east',
      ratingsUrl: 'http://stars:9080',
    });
  });

  it('refuses any version but v1, v2 and v3', () => {
    expect(() => loadConfig({})).toThrow('SERVICE_VERSION must be set to v1, v2 or v3');
    expect(() => loadConfig({ SERVICE_VERSION: 'v4' })).toThrow(
      "SERVICE_VERSION must be v1, v2 or v3, got 'v4'",
    );
  });

  it('exits 1 with one line on stderr when started with a bad SERVICE_VERSION', () => {
    const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'main.js');
    const r = spawnSync(process.execPath, [main], {
      env: { PATH: process.env.PATH ?? '', SERVICE_VERSION: 'v9', HOST: '127.0.0.1', PORT: '0' },
      encoding: 'utf8',
      timeout: 10_000,
    });
    expect(r.status).toBe(1);
    expect(r.stderr).toBe("reviews: SERVICE_VERSION must be v1, v2 or v3, got 'v9'\n");
  });
});
