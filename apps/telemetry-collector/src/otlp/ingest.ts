import type { OtlpSignal } from '@mizzen/xds';
import type { CollectorMetrics } from '../metrics.js';
import type { Storage } from '../store/storage.js';
import { type Normalised, normaliseLogs, normaliseMetrics, normaliseTraces } from './normalize.js';

export interface IngestResult {
  accepted: number;
  rejected: number;
  rejectReason?: string;
}

/** One path for every OTLP export, whatever the transport: validate, normalise, store. */
export class Ingest {
  constructor(
    private readonly storage: Storage,
    private readonly metrics: CollectorMetrics,
    private readonly maxItems: number,
  ) {}

  /** Throws OtlpShapeError (→ 400 / INVALID_ARGUMENT) when the request is not a valid export request. */
  async export(signal: OtlpSignal, request: unknown): Promise<IngestResult> {
    let result: Normalised<unknown>;
    switch (signal) {
      case 'traces': {
        const r = normaliseTraces(request, this.maxItems);
        await this.storage.addSpans(r.items);
        result = r;
        break;
      }
      case 'logs': {
        const r = normaliseLogs(request, this.maxItems);
        await this.storage.addLogs(r.items);
        result = r;
        break;
      }
      case 'metrics': {
        const r = normaliseMetrics(request, this.maxItems);
        await this.storage.addMetricPoints(r.items);
        result = r;
        break;
      }
    }
    this.metrics.received.inc({ signal }, result.items.length);
    if (result.rejected) this.metrics.rejected.inc({ signal }, result.rejected);
    return { accepted: result.items.length, rejected: result.rejected, rejectReason: result.rejectReason };
  }
}
