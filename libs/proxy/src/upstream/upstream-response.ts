import type { Readable } from 'node:stream';

export type UpstreamHeaders = Record<string, string | string[] | undefined>;

/** An upstream answer, whichever protocol carried it. */
export interface UpstreamResponse {
  readonly statusCode: number;
  readonly headers: UpstreamHeaders;
  readonly body: Readable;
  /** Trailers (gRPC's `grpc-status` travels here); complete once the body has ended. */
  trailers(): UpstreamHeaders;
  /** The answer was headers only, ending the stream (gRPC's "trailers-only" error responses). */
  readonly headersOnly?: boolean;
}

/** What the router sends upstream for one attempt. */
export interface UpstreamRequestHead {
  readonly method: string;
  readonly path: string;
  /** End-to-end headers; `host` is the authority. */
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: Buffer | Readable | null;
  /** Cancels the attempt (an EventEmitter with `aborted` and an 'abort' event, as undici accepts). */
  readonly signal: {
    aborted: boolean;
    once(event: 'abort', fn: () => void): unknown;
    off(event: 'abort', fn: () => void): unknown;
  };
}
