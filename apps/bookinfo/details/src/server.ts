import { createService, listen, type RunningService, type ServerConfig } from '@mizzen/bookinfo-common';
import type { FastifyInstance } from 'fastify';

import { detailsRoutes } from './routes.js';

export function buildServer(config: Pick<ServerConfig, 'logLevel'>): FastifyInstance {
  const app = createService({ name: 'details', logLevel: config.logLevel });
  void app.register(detailsRoutes);
  return app;
}

export function startServer(config: ServerConfig): Promise<RunningService> {
  return listen(buildServer(config), config.listen);
}
