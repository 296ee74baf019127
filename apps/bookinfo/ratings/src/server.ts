import { createService, listen, type RunningService, type ServerConfig } from '@mizzen/bookinfo-common';
import type { FastifyInstance } from 'fastify';

import { ratingsRoutes } from './routes.js';
import { RatingsStore } from './store.js';

export function buildServer(
  config: Pick<ServerConfig, 'logLevel'>,
  store = new RatingsStore(),
): FastifyInstance {
  const app = createService({ name: 'ratings', logLevel: config.logLevel });
  void app.register(ratingsRoutes, { store });
  return app;
}

export function startServer(config: ServerConfig, store?: RatingsStore): Promise<RunningService> {
  return listen(buildServer(config, store), config.listen);
}
