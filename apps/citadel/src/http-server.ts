import { createHash } from 'node:crypto';
import { joinPem } from '@mizzen/pki';
import Fastify, { type FastifyInstance } from 'fastify';
import type { CaStore } from './ca-store.js';
import type { CitadelMetrics } from './metrics.js';

export interface HttpDeps {
  store: CaStore;
  metrics: CitadelMetrics;
  isReady: () => boolean;
}

/**
 * citadel's HTTP port: `/ready`, `/metrics` (Prometheus) and `/root-cert.pem`,
 * the trust bundle pilot distributes to every proxy — the current roots and,
 * after a rotation, the old ones still in use (ETag'd, so pollers get 304
 * until the bundle changes).
 */
export function createHttpServer(deps: HttpDeps): FastifyInstance {
  const app = Fastify({ logger: false });

  app.get('/ready', async (_req, reply) => {
    if (!deps.isReady()) return reply.code(503).type('text/plain').send('not ready\n');
    return reply.type('text/plain').send('ready\n');
  });

  app.get('/metrics', async (_req, reply) => {
    const body = await deps.metrics.registry.metrics();
    return reply.type(deps.metrics.registry.contentType).send(body);
  });

  app.get('/root-cert.pem', async (req, reply) => {
    let roots: string;
    try {
      roots = joinPem(deps.store.trustBundle());
    } catch {
      return reply.code(503).type('text/plain').send('the CA is not ready\n');
    }
    const etag = `"${createHash('sha256').update(roots).digest('hex').slice(0, 32)}"`;
    reply.header('etag', etag).header('cache-control', 'no-cache');
    if (req.headers['if-none-match'] === etag) return reply.code(304).send();
    return reply.type('application/x-pem-file').send(roots);
  });

  return app;
}
