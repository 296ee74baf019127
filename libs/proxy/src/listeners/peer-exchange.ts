import type { Readable } from 'node:stream';
import type { PeerMetadata } from '../observe/records.js';
import { ExchangeHeaderReader } from '../observe/tcp-metadata-exchange.js';

/** What reading the peer's metadata exchange header found. */
export interface PeerExchangeResult {
  /** The workload the peer said it is; undefined when it sent no (usable) header. */
  readonly peer?: PeerMetadata;
  /** Why there is no peer, for the debug log. */
  readonly problem?: string;
  /** Bytes read past the header (or every byte read, when there was none): the application's. */
  readonly rest: Buffer;
}

/**
 * Reads the peer's metadata exchange header off a connection whose TLS
 * handshake agreed on `istio-peer-exchange`. Resolves once the header is
 * read, found absent, or the connection ends before it; the stream is then
 * left paused with none of this function's listeners, and `rest` holds what
 * was read beyond the header, for the caller to pass on before the stream's
 * further bytes.
 */
export function readPeerExchange(stream: Readable): Promise<PeerExchangeResult> {
  return new Promise((resolve) => {
    const reader = new ExchangeHeaderReader();
    let done = false;
    const finish = (r: ReturnType<ExchangeHeaderReader['push']>) => {
      if (r.state === 'need-more' || done) return;
      done = true;
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('close', onEnd);
      stream.off('error', onEnd);
      stream.pause();
      resolve({
        ...(r.state === 'exchanged' && r.peer ? { peer: r.peer } : {}),
        ...(r.problem ? { problem: r.problem } : {}),
        rest: r.rest,
      });
    };
    const onData = (chunk: Buffer) => finish(reader.push(chunk));
    // An error ends the connection too; its owner's own handlers see it and close both sides.
    const onEnd = () => finish(reader.ended());
    stream.on('data', onData);
    stream.once('end', onEnd);
    stream.once('close', onEnd);
    stream.once('error', onEnd);
  });
}
