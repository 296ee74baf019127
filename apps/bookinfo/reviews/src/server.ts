import { createService, HttpClient, listen, type RunningService } from '@mizzen/bookinfo-common';
import type { FastifyInstance } from 'fastify';
import type { ReviewsConfig } from './config.js';
import { reviewsRoutes } from './routes.js';

export type { ReviewsConfig, ReviewsVersion } from './config.js';
export type { ReviewsAnswer } from './reviews.js';

export function buildServer(config: Omit<ReviewsConfig, 'listen'>): FastifyInstance {
  const app = createService({ name: 'reviews', logLevel: config.logLevel });
  const client = new HttpClient(config.proxy);
  app.addHook('onClose', () => client.close());
  void app.register(reviewsRoutes, { config, client });
  return app;
}

export function startServer(config: ReviewsConfig): Promise<RunningService> {
  return listen(buildServer(config), config.listen);
}
