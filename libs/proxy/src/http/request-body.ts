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
 * Reads the request body so a retry can send it again; a body larger than
 * `limit` switches to streaming (already-read chunks first) and loses retries.
 */
export function readRequestBody(req: IncomingMessage, limit = RETRY_BUFFER_LIMIT): Promise<RequestBody> {
  if (!hasBody(req)) {
    req.resume();
    return Promise.resolve({ kind: 'none' });
  }
  if (mustStream(req, limit)) return Promise.resolve({ kind: 'stream', stream: req });
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
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
  });
}

async function* concat(first: Buffer[], rest: IncomingMessage): AsyncGenerator<Buffer> {
  yield* first;
  for await (const chunk of rest) yield chunk as Buffer;
}
