import { HttpClient, type ProxyConfig } from '@mizzen/bookinfo-common';
import type { ServiceUrls } from './config.js';

/** What a call to another service came to: its JSON, or the sentence to show instead and why. */
export type Outcome = { ok: true; body: unknown } | { ok: false; error: string; reason: string };

export const DETAILS_UNAVAILABLE = 'Sorry, product details are currently unavailable for this book.';
export const REVIEWS_UNAVAILABLE = 'Sorry, product reviews are currently unavailable for this book.';
export const RATINGS_UNAVAILABLE = 'Sorry, product ratings are currently unavailable for this book.';

/** productpage's calls to details, reviews and ratings, each bounded by `timeoutMs`. */
export class BookinfoClients {
  readonly #http: HttpClient;

  constructor(
    proxy: ProxyConfig,
    readonly urls: ServiceUrls,
    readonly timeoutMs: number,
  ) {
    this.#http = new HttpClient(proxy);
  }

  details(id: number, headers: Record<string, string>): Promise<Outcome> {
    return this.#get(`${this.urls.details}/details/${id}`, headers, DETAILS_UNAVAILABLE);
  }

  reviews(id: number, headers: Record<string, string>): Promise<Outcome> {
    return this.#get(`${this.urls.reviews}/reviews/${id}`, headers, REVIEWS_UNAVAILABLE);
  }

  ratings(id: number, headers: Record<string, string>): Promise<Outcome> {
    return this.#get(`${this.urls.ratings}/ratings/${id}`, headers, RATINGS_UNAVAILABLE);
  }

  close(): Promise<void> {
    return this.#http.close();
  }

  async #get(url: string, headers: Record<string, string>, error: string): Promise<Outcome> {
    try {
      return { ok: true, body: await this.#http.getJson(url, { headers, timeoutMs: this.timeoutMs }) };
    } catch (err) {
      return { ok: false, error, reason: (err as Error).message };
    }
  }
}
