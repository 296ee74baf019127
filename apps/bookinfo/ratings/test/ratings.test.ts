import type { RunningService } from '@mizzen/bookinfo-common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer } from '../src/server.js';
import { parseRatings, RatingsStore } from '../src/store.js';

describe('ratings', () => {
  let ratings: RunningService;

  const post = (id: string | number, body: string, contentType = 'application/json') =>
    fetch(`${ratings.url}/ratings/${id}`, { method: 'POST', headers: { 'content-type': contentType }, body });

  beforeAll(async () => {
    ratings = await startServer({ listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent' });
  });
  afterAll(async () => {
    await ratings?.close();
  });

  it('rates every product 5 and 4 stars until told otherwise', async () => {
    const res = await fetch(`${ratings.url}/ratings/0`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ id: 0, ratings: { Reviewer1: 5, Reviewer2: 4 } });
    expect(await (await fetch(`${ratings.url}/ratings/12`)).json()).toEqual({
      id: 12,
      ratings: { Reviewer1: 5, Reviewer2: 4 },
    });
  });

  it('takes new ratings for one product, in memory', async () => {
    const res = await post(3, JSON.stringify({ Reviewer1: 1, Reviewer2: 2 }));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ id: 3, ratings: { Reviewer1: 1, Reviewer2: 2 } });
    expect(await (await fetch(`${ratings.url}/ratings/3`)).json()).toEqual({
      id: 3,
      ratings: { Reviewer1: 1, Reviewer2: 2 },
    });
    // One reviewer at a time, whatever the content type says.
    expect(await (await post(3, '{"Reviewer2":3}', 'text/plain')).json()).toEqual({
      id: 3,
      ratings: { Reviewer1: 1, Reviewer2: 3 },
    });
    // Other products keep the defaults.
    expect(await (await fetch(`${ratings.url}/ratings/4`)).json()).toEqual({
      id: 4,
      ratings: { Reviewer1: 5, Reviewer2: 4 },
    });
  });

  it('refuses ratings that are not JSON, or not 1 to 5 for a known reviewer, and changes nothing', async () => {
    const before = await (await fetch(`${ratings.url}/ratings/5`)).json();
    const notJson = await post(5, '{oops');
    expect(notJson.status).toBe(400);
    expect(await notJson.json()).toEqual({ error: 'please provide valid ratings JSON' });
    for (const body of [
      '{"Reviewer1":0}',
      '{"Reviewer1":6}',
      '{"Reviewer1":2.5}',
      '{"Reviewer1":"5"}',
      '{"Someone":3}',
      '{}',
      '[5,4]',
      '5',
    ]) {
      const res = await post(5, body);
      expect(res.status, body).toBe(400);
      expect(await res.json()).toEqual({
        error: 'please provide ratings as integers from 1 to 5 for Reviewer1 and/or Reviewer2',
      });
    }
    const empty = await fetch(`${ratings.url}/ratings/5`, { method: 'POST' });
    expect(empty.status).toBe(400);
    expect(await (await fetch(`${ratings.url}/ratings/5`)).json()).toEqual(before);
  });

  it('asks for a numeric product id', async () => {
    for (const res of [await fetch(`${ratings.url}/ratings/x`), await post('x', '{"Reviewer1":3}')]) {
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ error: 'please provide numeric product id' });
    }
  });

  it('reports health', async () => {
    expect(await (await fetch(`${ratings.url}/health`)).json()).toEqual({ status: 'Ratings is healthy' });
  });
});

describe('RatingsStore', () => {
  it('hands out copies, so callers cannot change what is stored', () => {
    const store = new RatingsStore();
    store.get(0).Reviewer1 = 1;
    expect(store.get(0)).toEqual({ Reviewer1: 5, Reviewer2: 4 });
    store.update(0, { Reviewer2: 2 }).Reviewer2 = 5;
    expect(store.get(0)).toEqual({ Reviewer1: 5, Reviewer2: 2 });
    expect(parseRatings('{"Reviewer1":3}')).toEqual({ ratings: { Reviewer1: 3 } });
  });
});
