import { Agent, type Dispatcher, EnvHttpProxyAgent, request } from 'undici';
import type { ProxyConfig } from './config.js';

/** A call to another service that did not give a usable answer; `status` is set when it answered at all. */
export class UpstreamError extends Error {
  override readonly name = 'UpstreamError';
  constructor(
    message: string,
    readonly url: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export interface HttpClientOptions extends Partial<ProxyConfig> {
  /** Answers larger than this are refused (default 1 MiB). */
  maxBodyBytes?: number;
}

export interface GetOptions {
  /** Sent as-is; typically the forwarded headers of the request being served. */
  headers?: Record<string, string>;
  /** The whole call — connect, request, headers and body — must finish within this. */
  timeoutMs: number;
}

const DEFAULT_MAX_BODY = 1024 * 1024;

/**
 * The one outbound HTTP client of a Bookinfo service: keep-alive connection
 * pools, a deadline on every call, and — when a proxy is configured — every
 * http:// call sent to it in absolute form (`GET http://reviews:9080/reviews/0
 * HTTP/1.1`), as curl and most HTTP_PROXY clients do. undici's ProxyAgent
 * tunnels with CONNECT unless `proxyTunnel: false`, so that is set explicitly;
 * EnvHttpProxyAgent adds NO_PROXY matching on top.
 */
export class HttpClient {
  readonly #dispatcher: Dispatcher;
  readonly #maxBody: number;

  constructor(options: HttpClientOptions = {}) {
    this.#maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY;
    this.#dispatcher = options.httpProxy
      ? new EnvHttpProxyAgent({
          httpProxy: options.httpProxy,
          // Bookinfo only calls http:// services; were one https, it would be tunnelled through the same proxy.
          httpsProxy: options.httpProxy,
          noProxy: options.noProxy ?? '',
          proxyTunnel: false,
        })
      : new Agent();
  }

  /** GETs `url` and returns its JSON body; anything but a 2xx JSON answer within the deadline is an UpstreamError. */
  async getJson<T = unknown>(url: string, options: GetOptions): Promise<T> {
    const signal = AbortSignal.timeout(options.timeoutMs);
    let text: string;
    try {
      const res = await request(url, {
        method: 'GET',
        headers: { ...options.headers, accept: 'application/json' },
        dispatcher: this.#dispatcher,
        signal,
      });
      if (res.statusCode < 200 || res.statusCode > 299) {
        await res.body.dump();
        throw new UpstreamError(`GET ${url} answered ${res.statusCode}`, url, res.statusCode);
      }
      text = await this.#readBody(res.body, url);
    } catch (err) {
      if (err instanceof UpstreamError) throw err;
      if (signal.aborted) throw new UpstreamError(`GET ${url} timed out after ${options.timeoutMs}ms`, url);
      throw new UpstreamError(`GET ${url} failed: ${describeNetworkError(err)}`, url);
    }
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new UpstreamError(`GET ${url} answered with a body that is not JSON`, url, 200);
    }
  }

  async close(): Promise<void> {
    await this.#dispatcher.close();
  }

  async #readBody(
    body: AsyncIterable<Buffer> & { destroy(err?: Error): unknown },
    url: string,
  ): Promise<string> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of body) {
      size += chunk.length;
      if (size > this.#maxBody) {
        body.destroy();
        throw new UpstreamError(`GET ${url} answered more than ${this.#maxBody} bytes`, url, 200);
      }
      chunks.push(chunk);
    }
    return Buffer.concat(chunks).toString('utf8');
  }
}

function describeNetworkError(err: unknown): string {
  const e = err as { code?: string; cause?: { code?: string }; message?: string };
  const code = e.code ?? e.cause?.code;
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host not found';
    case 'ECONNRESET':
    case 'UND_ERR_SOCKET':
      return 'connection reset';
    default:
      return e.message ?? String(err);
  }
}
