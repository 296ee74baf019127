import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';

/** Envoy's default per-request buffer limit: bodies up to this size can be replayed on retry. */
export const RETRY_BUFFER_LIMIT = 1024 * 1024;

export type RequestBody =
  | { kind: 'none' }
  | { kind: 'buffered'; data: Buffer }
  /** Too large to keep: streamed once, so the request cannot be retried. */
  | { kind: 'stream'; stream: Readable };

function hasBody(req: IncomingMessage): boolean {
  // HTTP/2 says "no body" by ending the stream with the headers; a missing content-length means nothing there.
  if (req.httpVersionMajor === 2)
    return !(req as unknown as { stream: { endAfterHeaders: boolean } }).stream.endAfterHeaders;
  const te = req.headers['transfer-encoding'];
  if (te !== undefined) return true;
  const len = req.headers['content-length'];
  return len !== undefined && len !== '0';
}

/**
 * Streaming protocols must not wait for the end of the request before the
 * upstream sees it: gRPC (a bidirectional stream never "ends" first), and
 * bodies of unknown length.
 */
function mustStream(req: IncomingMessage, limit: number): boolean {
  if (String(req.headers['content-type'] ?? '').startsWith('application/grpc')) return true;
  const len = req.headers['content-length'];
  if (len === undefined) return true;
  return Number(len) > limit;
}

/**
 * The downstream request's body, read once: a filter may buffer its start
 * before the router runs (an external authorizer that checks the body), and
 * the router then gets every byte — those held first, then the rest as it
 * arrives. Nothing is held beyond what was asked for plus the chunk that
 * crossed the line.
 */
export class DownstreamBody {
  private readonly held: Buffer[] = [];
  private heldBytes = 0;
  private ended = false;
  /** False for a request that carries no body (GET, an upgrade): nothing to buffer or forward. */
  readonly present: boolean;

  constructor(
    private readonly req: IncomingMessage,
    present = hasBody(req),
  ) {
    this.present = present;
    if (!present) this.ended = true;
  }

  /** The body's declared length, when it has one. */
  get declaredLength(): number | undefined {
    const len = this.req.headers['content-length'];
    return len === undefined || !/^\d+$/.test(len) ? undefined : Number(len);
  }

  /**
   * Reads until at least `bytes` are held or the body ends (Envoy's decoder
   * buffer), and returns what is held: possibly more than `bytes`, by what
   * the last chunk brought. The stream is paused again when it returns.
   */
  async buffer(bytes: number): Promise<Buffer> {
    if (!this.ended && this.heldBytes < bytes) await this.readUntil(bytes);
    return Buffer.concat(this.held, this.heldBytes);
  }

  private readUntil(bytes: number): Promise<void> {
    const req = this.req;
    return new Promise((resolve, reject) => {
      const done = (err?: Error) => {
        req.off('data', onData);
        req.off('end', onEnd);
        req.off('error', onError);
        req.off('close', onClose);
        req.pause();
        if (err) reject(err);
        else resolve();
      };
      const onData = (chunk: Buffer) => {
        this.held.push(chunk);
        this.heldBytes += chunk.length;
        if (this.heldBytes >= bytes) done();
      };
      const onEnd = () => {
        this.ended = true;
        done();
      };
      const onError = (err: Error) => done(err);
      // A client that goes away before the end leaves nothing to check.
      const onClose = () => {
        if (!this.ended) done(new Error('the downstream closed before the request body ended'));
      };
      req.on('data', onData);
      req.on('end', onEnd);
      req.on('error', onError);
      req.on('close', onClose);
      req.resume();
    });
  }

  /**
   * Lets the rest of a body nobody will read flow away (a request answered
   * locally after part of it was buffered), so the connection can serve the
   * next request.
   */
  discard(): void {
    if (!this.ended) this.req.resume();
  }

  /**
   * The whole body for the router, kept so a retry can send it again; a body
   * larger than `limit` (or a streaming one) goes as a stream instead and
   * loses retries.
   */
  read(limit = RETRY_BUFFER_LIMIT): Promise<RequestBody> {
    const req = this.req;
    if (!this.present) {
      req.resume();
      return Promise.resolve({ kind: 'none' });
    }
    const first = this.held.splice(0);
    let size = this.heldBytes;
    this.heldBytes = 0;
    if (this.ended) return Promise.resolve({ kind: 'buffered', data: Buffer.concat(first, size) });
    if (mustStream(req, limit) || size > limit)
      return Promise.resolve({ kind: 'stream', stream: Readable.from(concat(first, req)) });
    return new Promise((resolve, reject) => {
      const chunks = first;
      const cleanup = () => {
        req.off('data', onData);
        req.off('end', onEnd);
        req.off('error', onError);
      };
      const onData = (chunk: Buffer) => {
        chunks.push(chunk);
        size += chunk.length;
        if (size > limit) {
          cleanup();
          req.pause();
          resolve({ kind: 'stream', stream: Readable.from(concat(chunks, req)) });
        }
      };
      const onEnd = () => {
        cleanup();
        resolve({ kind: 'buffered', data: Buffer.concat(chunks, size) });
      };
      const onError = (err: Error) => {
        cleanup();
        reject(err);
      };
      req.on('data', onData);
      req.on('end', onEnd);
      req.on('error', onError);
      // A filter that buffered the start left the stream paused; a 'data' listener alone would not restart it.
      req.resume();
    });
  }
}

/** Reads the request body as the router needs it (see DownstreamBody.read). */
export function readRequestBody(req: IncomingMessage, limit = RETRY_BUFFER_LIMIT): Promise<RequestBody> {
  return new DownstreamBody(req).read(limit);
}

async function* concat(first: Buffer[], rest: IncomingMessage): AsyncGenerator<Buffer> {
  yield* first;
  for await (const chunk of rest) yield chunk as Buffer;
}
