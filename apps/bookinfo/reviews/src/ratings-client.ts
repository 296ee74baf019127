import type { HttpClient } from '@mizzen/bookinfo-common';
import type { FastifyBaseLogger } from 'fastify';

export interface RatingsLookup {
  client: HttpClient;
  /** Base URL of ratings, e.g. http://ratings:9080. */
  baseUrl: string;
  timeoutMs: number;
  log: FastifyBaseLogger;
}

/**
 * Asks ratings for a product's stars per reviewer. Anything but a well-formed
 * answer in time — refused, slow, an error status, a strange body — is logged
 * and returns undefined, for the page to say ratings are unavailable.
 */
export async function fetchStars(
  lookup: RatingsLookup,
  id: number,
  headers: Record<string, string>,
): Promise<Record<string, number> | undefined> {
  try {
    const answer = await lookup.client.getJson<{ ratings?: unknown }>(`${lookup.baseUrl}/ratings/${id}`, {
      headers,
      timeoutMs: lookup.timeoutMs,
    });
    const stars: Record<string, number> = {};
    if (typeof answer?.ratings === 'object' && answer.ratings !== null) {
      for (const [reviewer, value] of Object.entries(answer.ratings)) {
        if (typeof value === 'number' && Number.isInteger(value) && value >= 0 && value <= 5)
          stars[reviewer] = value;
      }
    }
    return stars;
  } catch (err) {
    lookup.log.warn({ reason: (err as Error).message }, 'ratings unavailable');
    return undefined;
  }
}
