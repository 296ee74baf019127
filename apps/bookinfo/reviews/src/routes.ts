import { BAD_PRODUCT_ID, forwardedHeaders, type HttpClient, parseProductId } from '@mizzen/bookinfo-common';
import type { FastifyInstance } from 'fastify';
import type { ReviewsConfig } from './config.js';
import { fetchStars } from './ratings-client.js';
import { reviewsAnswer, starColor } from './reviews.js';

export interface ReviewsRoutesOptions {
  config: Omit<ReviewsConfig, 'listen' | 'logLevel' | 'proxy'>;
  client: HttpClient;
}

export async function reviewsRoutes(
  app: FastifyInstance,
  { config, client }: ReviewsRoutesOptions,
): Promise<void> {
  const withRatings = starColor(config.version) !== undefined;

  app.get('/health', async () => ({ status: 'Reviews is healthy' }));

  app.get<{ Params: { id: string } }>('/reviews/:id', async (req, reply) => {
    const id = parseProductId(req.params.id);
    if (id === undefined) return reply.code(400).send(BAD_PRODUCT_ID);
    const stars = withRatings
      ? await fetchStars(
          { client, baseUrl: config.ratingsUrl, timeoutMs: config.ratingsTimeoutMs, log: req.log },
          id,
          forwardedHeaders(req.headers),
        )
      : undefined;
    return reviewsAnswer(
      { id, version: config.version, podName: config.podName, clusterName: config.clusterName },
      stars,
    );
  });
}
