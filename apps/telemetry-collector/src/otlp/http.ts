import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { Logger } from '@mizzen/runtime';
import {
  decodeOtlpRequest,
  encodeOtlpResponse,
  encodeRpcStatus,
  OtlpDecodeError,
  type OtlpSignal,
} from '@mizzen/xds';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { CollectorMetrics } from '../metrics.js';
import type { Ingest } from './ingest.js';
import { OtlpShapeError } from './normalize.js';

const gunzip = promisify(zlib.gunzip);

const PATHS: Record<string, OtlpSignal> = {
  '/v1/traces': 'traces',
  '/v1/metrics': 'metrics',
  '/v1/logs': 'logs',
};

const REJECTED_FIELD: Record<OtlpSignal, string> = {
  traces: 'rejectedSpans',
  metrics: 'rejectedDataPoints',
  logs: 'rejectedLogRecords',
};

/** google.rpc.Code INVALID_ARGUMENT */
const INVALID_ARGUMENT = 3;

class BadRequest extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

type Encoding = 'protobuf' | 'json';

function encodingOf(contentType: string | undefined): Encoding | undefined {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase();
  if (type === 'application/x-protobuf' || type === 'application/protobuf') return 'protobuf';
  if (type === 'application/json') return 'json';
  return undefined;
}

export interface OtlpHttpOptions {
  ingest: Ingest;
  metrics: CollectorMetrics;
  logger: Logger;
  /** Largest body accepted, compressed or not. */
  maxRequestBytes: number;
}

/**
 * OTLP/HTTP receiver: `POST /v1/traces`, `/v1/metrics`, `/v1/logs` with
 * protobuf or JSON bodies, optionally gzip-compressed. Answers in the
 * request's encoding: an export response (with partial success when some
 * items were rejected), or 400 with a google.rpc.Status naming the problem.
 */
export function createOtlpHttpServer(options: OtlpHttpOptions): FastifyInstance {
  // A sender that stalls mid-body is cut off rather than holding a connection forever.
  const app = Fastify({ logger: false, bodyLimit: options.maxRequestBytes, requestTimeout: 30_000 });
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  const fail = (reply: FastifyReply, encoding: Encoding, status: number, message: string) => {
    if (encoding === 'protobuf') {
      return reply
        .code(status)
        .header('content-type', 'application/x-protobuf')
        .send(Buffer.from(encodeRpcStatus(INVALID_ARGUMENT, message)));
    }
    return reply
      .code(status)
      .header('content-type', 'application/json')
      .send({ code: INVALID_ARGUMENT, message });
  };

  app.setErrorHandler((err: Error & { code?: string; statusCode?: number }, req, reply) => {
    const encoding = encodingOf(req.headers['content-type']) ?? 'json';
    const signal = PATHS[req.url.split('?')[0]!] ?? 'unknown';
    options.metrics.otlpRequests.inc({ signal, transport: 'http', result: 'bad_request' });
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return fail(reply, encoding, 400, `request body exceeds the ${options.maxRequestBytes}-byte limit`);
    }
    if ((err.statusCode ?? 500) < 500) return fail(reply, encoding, 400, err.message);
    options.logger.error({ err: err.message }, 'OTLP request failed');
    return fail(reply, encoding, 500, 'internal error');
  });

  const handle = async (signal: OtlpSignal, req: FastifyRequest, reply: FastifyReply) => {
    const encoding = encodingOf(req.headers['content-type']);
    if (!encoding) {
      options.metrics.otlpRequests.inc({ signal, transport: 'http', result: 'unsupported_media_type' });
      return fail(
        reply.code(415),
        'json',
        415,
        `unsupported content-type "${req.headers['content-type'] ?? ''}": use application/x-protobuf or application/json`,
      );
    }
    try {
      let body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      const contentEncoding = String(req.headers['content-encoding'] ?? 'identity').toLowerCase();
      if (contentEncoding === 'gzip') {
        try {
          body = await gunzip(body, { maxOutputLength: options.maxRequestBytes });
        } catch (err) {
          const e = err as NodeJS.ErrnoException;
          throw new BadRequest(
            e.code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError
              ? `decompressed body exceeds the ${options.maxRequestBytes}-byte limit`
              : `gzip body could not be decompressed: ${e.message}`,
          );
        }
      } else if (contentEncoding !== 'identity' && contentEncoding !== '') {
        throw new BadRequest(`unsupported content-encoding "${contentEncoding}": use gzip or none`);
      }
      let request: unknown;
      if (encoding === 'protobuf') {
        request = decodeOtlpRequest(signal, body);
      } else {
        try {
          request = JSON.parse(body.toString('utf8'));
        } catch (err) {
          throw new BadRequest(`body is not valid JSON: ${(err as Error).message}`);
        }
      }
      const result = await options.ingest.export(signal, request);
      options.metrics.otlpRequests.inc({ signal, transport: 'http', result: 'ok' });
      const partial = result.rejected
        ? { rejected: result.rejected, errorMessage: result.rejectReason ?? 'rejected' }
        : undefined;
      if (encoding === 'protobuf') {
        return reply
          .code(200)
          .header('content-type', 'application/x-protobuf')
          .send(Buffer.from(encodeOtlpResponse(signal, partial)));
      }
      return reply
        .code(200)
        .header('content-type', 'application/json')
        .send(
          partial
            ? {
                partialSuccess: {
                  [REJECTED_FIELD[signal]]: String(partial.rejected),
                  errorMessage: partial.errorMessage,
                },
              }
            : {},
        );
    } catch (err) {
      if (err instanceof BadRequest || err instanceof OtlpDecodeError || err instanceof OtlpShapeError) {
        options.metrics.otlpRequests.inc({ signal, transport: 'http', result: 'bad_request' });
        return fail(reply, encoding, 400, err.message);
      }
      throw err;
    }
  };

  for (const [path, signal] of Object.entries(PATHS)) {
    app.post(path, (req, reply) => handle(signal, req, reply));
  }
  return app;
}
