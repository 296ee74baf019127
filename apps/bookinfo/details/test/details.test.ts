import type { RunningService } from '@mizzen/bookinfo-common';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startServer } from '../src/server.js';

describe('details', () => {
  let details: RunningService;

  beforeAll(async () => {
    details = await startServer({ listen: { host: '127.0.0.1', port: 0 }, logLevel: 'silent' });
  });
  afterAll(async () => {
    await details?.close();
  });

  it("answers a book's details by numeric product id", async () => {
    for (const id of [0, 7]) {
      const res = await fetch(`${details.url}/details/${id}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain('application/json');
      expect(await res.json()).toEqual({
        id,
        author: 'William Shakespeare',
        year: 1595,
        type: 'paperback',
        pages: 200,
        publisher: 'PublisherA',
        language: 'English',
        'ISBN-10': '1234567890',
        'ISBN-13': '123-1234567890',
      });
    }
  });

  it('asks for a numeric id when given anything else', async () => {
    for (const bad of ['abc', '-1', '1.5', '%3Cscript%3E']) {
      const res = await fetch(`${details.url}/details/${bad}`);
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ error: 'please provide numeric product id' });
    }
  });

  it('reports health', async () => {
    expect(await (await fetch(`${details.url}/health`)).json()).toEqual({ status: 'Details is healthy' });
  });
});
