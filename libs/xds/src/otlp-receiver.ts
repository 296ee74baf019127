import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeOtlpRequest } from './otlp.js';

/** One span an OTLP receiver got: its resource's attributes, and the span's own fields. */
export interface ReceivedSpan {
  /** The resource's `service.name`. */
  readonly service: string;
  readonly resource: Readonly<Record<string, unknown>>;
  readonly name: string;
  readonly kind: number;
  readonly attributes: Readonly<Record<string, unknown>>;
  /** OTLP status code: 0 unset, 1 ok, 2 error. */
  readonly statusCode: number;
  readonly statusMessage?: string;
}

export interface OtlpTraceReceiver {
  /** The base URL to give as `OTEL_EXPORTER_OTLP_ENDPOINT` (traces go to `/v1/traces`). */
  readonly url: string;
  /** Every span received so far, in arrival order. */
  readonly spans: ReceivedSpan[];
  close(): Promise<void>;
}

type KeyValue = { key: string; value: Record<string, unknown> };

function attributesOf(list: KeyValue[] | undefined): Record<string, unknown> {
  return Object.fromEntries((list ?? []).map((a) => [a.key, Object.values(a.value)[0]]));
}

/**
 * A local OTLP/HTTP protobuf receiver for traces on a free loopback port:
 * what a component exported, span by span — for tests of the components'
 * own tracing, where a whole collector would be more than is needed.
 */
export async function startOtlpTraceReceiver(): Promise<OtlpTraceReceiver> {
  const spans: ReceivedSpan[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const body = decodeOtlpRequest('traces', Buffer.concat(chunks)) as {
          resourceSpans?: {
            resource?: { attributes?: KeyValue[] };
            scopeSpans?: {
              spans?: {
                name: string;
                kind: number;
                attributes?: KeyValue[];
                status?: { code?: number; message?: string };
              }[];
            }[];
          }[];
        };
        for (const rs of body.resourceSpans ?? []) {
          const resource = attributesOf(rs.resource?.attributes);
          for (const ss of rs.scopeSpans ?? [])
            for (const s of ss.spans ?? [])
              spans.push({
                service: String(resource['service.name'] ?? ''),
                resource,
                name: s.name,
                kind: s.kind,
                attributes: attributesOf(s.attributes),
                statusCode: s.status?.code ?? 0,
                ...(s.status?.message ? { statusMessage: s.status.message } : {}),
              });
        }
      }
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    spans,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}
