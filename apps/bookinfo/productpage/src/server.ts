import { fileURLToPath } from 'node:url';
import { createService, listen, type RunningService } from '@mizzen/bookinfo-common';
import type { FastifyInstance } from 'fastify';
import { BookinfoClients } from './clients.js';
import type { ProductpageConfig } from './config.js';
import { apiRoutes } from './routes/api.js';
import { siteRoutes } from './routes/site.js';
import { staticRoutes } from './routes/static.js';

export type { ProductpageConfig, ServiceUrls } from './config.js';

/** The package's static/ directory: next to src/ and dist/, so found from either, whatever the cwd. */
export const STATIC_DIR = fileURLToPath(new URL('../static/', import.meta.url));

export function buildServer(config: Omit<ProductpageConfig, 'listen'>): FastifyInstance {
  const app = createService({ name: 'productpage', logLevel: config.logLevel });
  const clients = new BookinfoClients(config.proxy, config.services, config.timeoutMs);
  app.addHook('onClose', () => clients.close());
  void app.register(siteRoutes, { clients });
  void app.register(apiRoutes, { clients });
  void app.register(staticRoutes, { dir: STATIC_DIR });
  return app;
}

export function startServer(config: ProductpageConfig): Promise<RunningService> {
  return listen(buildServer(config), config.listen);
}
