import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Bookinfo, startBookinfo } from './helpers.js';

describe('the JSON API', () => {
  let bi: Bookinfo;
  const get = async (path: string, headers: Record<string, string> = {}) => {
    const res = await fetch(`${bi.productpage.url}${path}`, { headers });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  beforeAll(async () => {
    bi = await startBookinfo();
  });
  beforeEach(() => {
    bi.proxy.requests.length = 0;
  });
  afterAll(async () => {
    await bi?.close();
  });

  it('lists the products', async () => {
    const { status, body } = await get('/api/v1/products');
    expect(status).toBe(200);
    expect(body).toEqual([
      {
        id: 0,
        title: 'The Comedy of Errors',
        descriptionHtml: expect.stringContaining('William Shakespeare'),
      },
    ]);
  });

  it("passes details' answer through", async () => {
    const { status, body } = await get('/api/v1/products/0', { 'x-request-id': 'api-1' });
    expect(status).toBe(200);
    expect(body).toMatchObject({
      id: 0,
      author: 'William Shakespeare',
      publisher: 'PublisherA',
      'ISBN-13': '123-1234567890',
    });
    expect(bi.proxy.requests.map((r) => [r.target, r.headers['x-request-id']])).toEqual([
      ['http://details:9080/details/0', 'api-1'],
    ]);
  });

  it("passes the reviews service's answer through whole, version and ratings included", async () => {
    bi.routeReviews('v3');
    const { status, body } = await get('/api/v1/products/0/reviews');
    expect(status).toBe(200);
    expect(body).toEqual({
      id: '0',
      podname: 'reviews-v3',
      clustername: 'null',
      version: 'v3',
      reviews: [
        { reviewer: 'Reviewer1', text: expect.any(String), rating: { stars: 5, color: 'red' } },
        { reviewer: 'Reviewer2', text: expect.any(String), rating: { stars: 4, color: 'red' } },
      ],
    });
    bi.routeReviews('v1');
    expect((await get('/api/v1/products/0/reviews')).body.version).toBe('v1');
  });

  it("passes ratings' answer through", async () => {
    const { status, body } = await get('/api/v1/products/0/ratings');
    expect(status).toBe(200);
    expect(body).toEqual({ id: 0, ratings: { Reviewer1: 5, Reviewer2: 4 } });
    expect(bi.proxy.requests.map((r) => r.target)).toEqual(['http://ratings:9080/ratings/0']);
  });

  it('answers 503 with the reason when the service cannot be reached, and 400 for a bad id', async () => {
    const lost = await bi.startProductpage({
      services: { details: 'http://gone:9080', reviews: 'http://gone:9080', ratings: 'http://gone:9080' },
    });
    for (const [path, error] of [
      ['/api/v1/products/0', 'Sorry, product details are currently unavailable for this book.'],
      ['/api/v1/products/0/reviews', 'Sorry, product reviews are currently unavailable for this book.'],
      ['/api/v1/products/0/ratings', 'Sorry, product ratings are currently unavailable for this book.'],
    ] as const) {
      const res = await fetch(`${lost.url}${path}`);
      expect(res.status, path).toBe(503);
      expect(await res.json()).toEqual({ error });
    }
    for (const path of [
      '/api/v1/products/x',
      '/api/v1/products/-1/reviews',
      '/api/v1/products/1.5/ratings',
    ]) {
      const { status, body } = await get(path);
      expect(status, path).toBe(400);
      expect(body).toEqual({ error: 'please provide numeric product id' });
    }
    expect(bi.proxy.requests.filter((r) => !r.target.startsWith('http://gone:'))).toEqual([]);
  });

  it('reports health', async () => {
    expect(await get('/health')).toEqual({ status: 200, body: { status: 'Productpage is healthy' } });
  });
});
