import { BAD_PRODUCT_ID, parseProductId } from '@mizzen/bookinfo-common';
import type { FastifyInstance } from 'fastify';
import { parseRatings, type RatingsStore } from './store.js';

export interface RatingsRoutesOptions {
  store: RatingsStore;
}

export async function ratingsRoutes(app: FastifyInstance, { store }: RatingsRoutesOptions): Promise<void> {
  // Like Istio's ratings, take any body and judge it as JSON here, so a bad one gets Bookinfo's own answer.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));

  app.get('/health', async () => ({ status: 'Ratings is healthy' }));

  app.get<{ Params: { id: string } }>('/ratings/:id', async (req, reply) => {
    const id = parseProductId(req.params.id);
    if (id === undefined) return reply.code(400).send(BAD_PRODUCT_ID);
    return { id, ratings: store.get(id) };
  });

  app.post<{ Params: { id: string }; Body: string | undefined }>('/ratings/:id', async (req, reply) => {
    const id = parseProductId(req.params.id);
    if (id === undefined) return reply.code(400).send(BAD_PRODUCT_ID);
    const parsed = parseRatings(typeof req.body === 'string' ? req.body : '');
    if ('error' in parsed) return reply.code(400).send({ error: parsed.error });
    return { id, ratings: store.update(id, parsed.ratings) };
  });
}
