import { BAD_PRODUCT_ID, parseProductId } from '@mizzen/bookinfo-common';
import type { FastifyInstance } from 'fastify';
import { bookDetails } from './book.js';

export async function detailsRoutes(app: FastifyInstance): Promise<void> {
  app.get('/health', async () => ({ status: 'Details is healthy' }));

  app.get<{ Params: { id: string } }>('/details/:id', async (req, reply) => {
    const id = parseProductId(req.params.id);
    if (id === undefined) return reply.code(400).send(BAD_PRODUCT_ID);
    return bookDetails(id);
  });
}
