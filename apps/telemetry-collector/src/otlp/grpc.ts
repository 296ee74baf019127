import * as grpc from '@grpc/grpc-js';
import type { Logger } from '@mizzen/runtime';
import {
  decodeOtlpRequest,
  encodeOtlpResponse,
  OTLP_GRPC_METHODS,
  OtlpDecodeError,
  type OtlpSignal,
} from '@mizzen/xds';
import type { CollectorMetrics } from '../metrics.js';
import type { Ingest } from './ingest.js';
import { OtlpShapeError } from './normalize.js';

export interface OtlpGrpcOptions {
  ingest: Ingest;
  metrics: CollectorMetrics;
  logger: Logger;
  maxRequestBytes: number;
}

const identity = (b: Buffer) => b;

/**
 * The OTLP gRPC collector services (TraceService, MetricsService,
 * LogsService `Export`). Messages larger than the limit are refused by gRPC
 * itself (RESOURCE_EXHAUSTED); malformed ones get INVALID_ARGUMENT with the
 * reason; gzip-compressed calls are decompressed by grpc-js.
 */
export class OtlpGrpcServer {
  private readonly server: grpc.Server;

  constructor(private readonly options: OtlpGrpcOptions) {
    this.server = new grpc.Server({
      'grpc.max_receive_message_length': options.maxRequestBytes,
      'grpc.max_send_message_length': 1024 * 1024,
    });
    for (const signal of Object.keys(OTLP_GRPC_METHODS) as OtlpSignal[]) {
      this.server.addService(
        {
          Export: {
            path: OTLP_GRPC_METHODS[signal],
            requestStream: false,
            responseStream: false,
            requestDeserialize: identity,
            requestSerialize: identity,
            responseSerialize: identity,
            responseDeserialize: identity,
          },
        },
        {
          Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
            void this.export(signal, call.request, callback);
          },
        },
      );
    }
  }

  private async export(
    signal: OtlpSignal,
    body: Buffer,
    callback: grpc.sendUnaryData<Buffer>,
  ): Promise<void> {
    try {
      const result = await this.options.ingest.export(signal, decodeOtlpRequest(signal, body));
      this.options.metrics.otlpRequests.inc({ signal, transport: 'grpc', result: 'ok' });
      const partial = result.rejected
        ? { rejected: result.rejected, errorMessage: result.rejectReason ?? 'rejected' }
        : undefined;
      callback(null, Buffer.from(encodeOtlpResponse(signal, partial)));
    } catch (err) {
      const invalid = err instanceof OtlpDecodeError || err instanceof OtlpShapeError;
      this.options.metrics.otlpRequests.inc({
        signal,
        transport: 'grpc',
        result: invalid ? 'bad_request' : 'error',
      });
      if (!invalid) this.options.logger.error({ err: (err as Error).message }, 'OTLP gRPC export failed');
      callback({
        code: invalid ? grpc.status.INVALID_ARGUMENT : grpc.status.INTERNAL,
        details: invalid ? (err as Error).message : 'internal error',
      });
    }
  }

  listen(port: number, host: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.bindAsync(
        `${host.includes(':') ? `[${host}]` : host}:${port}`,
        grpc.ServerCredentials.createInsecure(),
        (err, bound) => (err ? reject(err) : resolve(bound)),
      );
    });
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 2000);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}
