import type { FastifyInstance, FastifyReply } from 'fastify';
import { type BookinfoClients, DETAILS_UNAVAILABLE, REVIEWS_UNAVAILABLE } from '../clients.js';
import { renderIndex, renderLoginRefused, renderProductPage } from '../pages.js';
import { FEATURED } from '../product.js';
import { loginCookie, logoutCookie, outboundHeaders, sessionUser, validUsername } from '../session.js';
import { detailRows, reviewsView } from '../views.js';

export interface SiteRoutesOptions {
  clients: BookinfoClients;
}

function sendHtml(reply: FastifyReply, page: string, status = 200): FastifyReply {
  return reply.code(status).type('text/html; charset=utf-8').header('cache-control', 'no-store').send(page);
}

/** The pages people see: the index, the product page, and signing in and out. */
export async function siteRoutes(app: FastifyInstance, { clients }: SiteRoutesOptions): Promise<void> {
  app.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'string', bodyLimit: 4096 },
    (_req, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))),
  );

  app.get('/', async (req, reply) => sendHtml(reply, renderIndex(sessionUser(req))));

  app.get('/productpage', async (req, reply) => {
    const headers = outboundHeaders(req);
    const [details, reviews] = await Promise.all([
      clients.details(FEATURED.id, headers),
      clients.reviews(FEATURED.id, headers),
    ]);
    const rows = details.ok ? detailRows(details.body) : undefined;
    const shown = reviews.ok ? reviewsView(reviews.body) : undefined;
    if (!rows)
      req.log.warn({ reason: details.ok ? 'not a details answer' : details.reason }, 'details unavailable');
    if (!shown)
      req.log.warn({ reason: reviews.ok ? 'not a reviews answer' : reviews.reason }, 'reviews unavailable');
    return sendHtml(
      reply,
      renderProductPage({
        product: FEATURED,
        user: sessionUser(req),
        details: rows ?? DETAILS_UNAVAILABLE,
        reviews: shown ?? REVIEWS_UNAVAILABLE,
      }),
    );
  });

  app.post<{ Body: Record<string, unknown> | undefined }>('/login', async (req, reply) => {
    const user = validUsername(req.body?.username);
    if (user === undefined) return sendHtml(reply, renderLoginRefused(), 400);
    return reply.header('set-cookie', loginCookie(user)).redirect('/productpage', 302);
  });

  app.get('/logout', async (_req, reply) =>
    reply.header('set-cookie', logoutCookie()).redirect('/productpage', 302),
  );
}
