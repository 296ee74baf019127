import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance, LogController } from 'fastify';
import type { ListenConfig, LogLevel } from './config.js';

export interface ServiceOptions {
  /** The service's name, the `component` of every log line. */
  name: string;
  logLevel?: LogLevel;
}

/**
 * A fastify instance with the conventions every Bookinfo service shares:
 * structured JSON logs with a component field (no per-request lines), JSON
 * errors shaped like Bookinfo's (`{ error }`), and small request bodies.
 */
export function createService(options: ServiceOptions): FastifyInstance {
  const level = options.logLevel ?? 'info';
  const app = Fastify({
    logger: level === 'silent' ? false : { level, base: { component: options.name } },
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 64 * 1024,
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: `no route for ${req.method} ${req.url.split('?')[0]}` });
  });
  app.setErrorHandler((err: { statusCode?: number; message: string }, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) req.log.error({ err }, 'request failed');
    void reply.code(status).send({ error: status >= 500 ? 'internal error' : err.message });
  });
  return app;
}

export interface RunningService {
  app: FastifyInstance;
  /** Where it listens, e.g. http://127.0.0.1:9080 (IPv6 hosts in brackets). */
  url: string;
  host: string;
  port: number;
  /** Stops accepting connections, closes idle ones, and runs the app's onClose hooks. */
  close(): Promise<void>;
}

/** Starts `app` on `listen` (port 0 picks a free one). On failure the app is closed and the error rethrown. */
export async function listen(app: FastifyInstance, listen: ListenConfig): Promise<RunningService> {
  try {
    await app.listen({ host: listen.host, port: listen.port });
  } catch (err) {
    await app.close().catch(() => undefined);
    throw err;
  }
  const address = app.server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    app,
    url: `http://${host}:${address.port}`,
    host: address.address,
    port: address.port,
    close: () => app.close(),
  };
}
