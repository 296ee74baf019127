import { BAD_PRODUCT_ID, parseProductId } from '@mizzen/bookinfo-common';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { BookinfoClients, Outcome } from '../clients.js';
import { PRODUCTS } from '../product.js';
import { outboundHeaders } from '../session.js';

export interface ApiRoutesOptions {
  clients: BookinfoClients;
}

type Call = (clients: BookinfoClients, id: number, headers: Record<string, string>) => Promise<Outcome>;

/**
 * The JSON API: the product list, and per product the answers of details,
 * reviews and ratings passed through whole — or 503 with `{ error }` when the
 * service could not be asked.
 */
export async function apiRoutes(app: FastifyInstance, { clients }: ApiRoutesOptions): Promise<void> {
  const passThrough =
    (call: Call) => async (req: FastifyRequest<{ Params: { id: string } }>, reply: FastifyReply) => {
      const id = parseProductId(req.params.id);
      if (id === undefined) return reply.code(400).send(BAD_PRODUCT_ID);
      const outcome = await call(clients, id, outboundHeaders(req));
      if (outcome.ok) return reply.send(outcome.body);
      req.log.warn({ reason: outcome.reason }, 'upstream unavailable');
      return reply.code(503).send({ error: outcome.error });
    };

  app.get('/health', async () => ({ status: 'Productpage is healthy' }));
  app.get('/api/v1/products', async () => PRODUCTS);
  app.get(
    '/api/v1/products/:id',
    passThrough((c, id, h) => c.details(id, h)),
  );
  app.get(
    '/api/v1/products/:id/reviews',
    passThrough((c, id, h) => c.reviews(id, h)),
  );
  app.get(
    '/api/v1/products/:id/ratings',
    passThrough((c, id, h) => c.ratings(id, h)),
  );
}
