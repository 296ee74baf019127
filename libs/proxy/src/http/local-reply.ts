import type { ServerResponse } from 'node:http';

/**
 * A response the proxy makes itself (no route, no healthy upstream, timeout…),
 * with Envoy's wording so operators recognise it.
 */
export function sendLocalReply(
  res: ServerResponse,
  status: number,
  body: string | Buffer,
  headers: Record<string, string | string[]> = {},
): void {
  if (res.headersSent) {
    // Too late for a status code: the only honest signal left is to cut the stream.
    res.destroy();
    return;
  }
  const payload = typeof body === 'string' ? Buffer.from(body) : body;
  res.writeHead(status, {
    'content-type': 'text/plain',
    'content-length': payload.length,
    server: 'istio-envoy',
    ...headers,
  });
  res.end(payload);
}

/** Envoy's local reply texts. */
export const LocalReplies = {
  noRoute: '',
  noHealthyUpstream: 'no healthy upstream',
  noCluster: 'cluster not found',
  upstreamTimeout: 'upstream request timeout',
  connectFailure:
    'upstream connect error or disconnect/reset before headers. reset reason: connection failure',
  reset: 'upstream connect error or disconnect/reset before headers. reset reason: connection termination',
  overflow: 'upstream connect error or disconnect/reset before headers. reset reason: overflow',
  localReset: 'upstream connect error or disconnect/reset before headers. reset reason: local reset',
  refusedStream:
    'upstream connect error or disconnect/reset before headers. reset reason: remote refused stream reset',
} as const;
