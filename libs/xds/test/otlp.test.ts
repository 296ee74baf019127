import { describe, expect, it } from 'vitest';
import {
  decodeOtlpRequest,
  decodeOtlpResponse,
  decodeRpcStatus,
  encodeOtlpRequest,
  encodeOtlpResponse,
  encodeRpcStatus,
  OtlpDecodeError,
} from '../src/otlp.js';

describe('OTLP protobuf', () => {
  it('round-trips export requests in OTLP/JSON shape: hex ids, 64-bit integers as strings, AnyValues', () => {
    const request = {
      resourceSpans: [
        {
          resource: { attributes: [{ key: 'service.name', value: { stringValue: 'reviews' } }] },
          scopeSpans: [
            {
              scope: { name: 'mizzen' },
              spans: [
                {
                  traceId: '0af7651916cd43dd8448eb211c80319c',
                  spanId: 'b7ad6b7169203331',
                  parentSpanId: '00f067aa0ba902b7',
                  name: 'GET /reviews/0',
                  kind: 2,
                  startTimeUnixNano: '1700000000000000001',
                  endTimeUnixNano: '1700000000005000001',
                  attributes: [
                    { key: 'http.response.status_code', value: { intValue: '200' } },
                    {
                      key: 'tags',
                      value: { arrayValue: { values: [{ stringValue: 'a' }, { boolValue: true }] } },
                    },
                    {
                      key: 'peer',
                      value: { kvlistValue: { values: [{ key: 'x', value: { doubleValue: 1.5 } }] } },
                    },
                  ],
                  status: { code: 2, message: 'boom' },
                  links: [{ traceId: '1af7651916cd43dd8448eb211c80319c', spanId: 'c7ad6b7169203331' }],
                },
              ],
            },
          ],
        },
      ],
    };
    expect(decodeOtlpRequest('traces', encodeOtlpRequest('traces', request))).toEqual(request);
    const logs = {
      resourceLogs: [
        {
          scopeLogs: [
            {
              logRecords: [
                {
                  timeUnixNano: '1700000000000000000',
                  severityNumber: 9,
                  body: { stringValue: '{"response_code":200}' },
                  traceId: '0af7651916cd43dd8448eb211c80319c',
                  spanId: 'b7ad6b7169203331',
                },
              ],
            },
          ],
        },
      ],
    };
    expect(decodeOtlpRequest('logs', encodeOtlpRequest('logs', logs))).toEqual(logs);
    const metrics = {
      resourceMetrics: [
        {
          scopeMetrics: [
            {
              metrics: [
                {
                  name: 'requests',
                  sum: {
                    dataPoints: [{ asInt: '42', timeUnixNano: '1' }],
                    aggregationTemporality: 2,
                    isMonotonic: true,
                  },
                },
                {
                  name: 'latency',
                  histogram: {
                    dataPoints: [
                      { count: '9', sum: 420, bucketCounts: ['3', '5', '1'], explicitBounds: [10, 100] },
                    ],
                    aggregationTemporality: 2,
                  },
                },
              ],
            },
          ],
        },
      ],
    };
    expect(decodeOtlpRequest('metrics', encodeOtlpRequest('metrics', metrics))).toEqual(metrics);
  });

  it('encodes responses with partial success and google.rpc.Status bodies', () => {
    expect(decodeOtlpResponse('traces', encodeOtlpResponse('traces'))).toEqual({});
    expect(
      decodeOtlpResponse('logs', encodeOtlpResponse('logs', { rejected: 3, errorMessage: 'bad ids' })),
    ).toEqual({
      rejected: 3,
      errorMessage: 'bad ids',
    });
    expect(encodeOtlpResponse('metrics')).toHaveLength(0);
    expect(decodeRpcStatus(encodeRpcStatus(3, 'body is not valid JSON'))).toEqual({
      code: 3,
      message: 'body is not valid JSON',
    });
  });

  it('rejects bytes that are not an export request', () => {
    expect(() => decodeOtlpRequest('traces', Buffer.from('definitely not protobuf'))).toThrow(
      OtlpDecodeError,
    );
    expect(() => decodeOtlpRequest('metrics', Buffer.from([0x0a, 0x05, 0x01]))).toThrow(
      /not a valid OTLP metrics protobuf message/,
    );
  });
});
