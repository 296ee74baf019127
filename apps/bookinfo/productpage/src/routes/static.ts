import fs from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';

export interface StaticRoutesOptions {
  /** The directory whose files are served under /static/. */
  dir: string;
}

const TYPES: Record<string, string> = {
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/**
 * /static/<name>: the files of one flat directory, read once at start. Only
 * names that are in it are served, so no request can reach another path.
 */
export async function staticRoutes(app: FastifyInstance, { dir }: StaticRoutesOptions): Promise<void> {
  const files = new Map<string, { body: Buffer; type: string }>();
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const type = TYPES[path.extname(entry.name)];
    if (entry.isFile() && type)
      files.set(entry.name, { body: fs.readFileSync(path.join(dir, entry.name)), type });
  }

  app.get<{ Params: { name: string } }>('/static/:name', async (req, reply) => {
    const file = files.get(req.params.name);
    if (!file) return reply.code(404).send({ error: `no static file ${req.params.name}` });
    return reply.type(file.type).header('cache-control', 'public, max-age=300').send(file.body);
  });
}
