import { describe, expect, it } from 'vitest';
import { FORWARDED_HEADERS, forwardedHeaders } from '../src/headers.js';

describe('forwarded headers', () => {
  it('keeps the request id, trace context and end-user, and nothing else', () => {
    const out = forwardedHeaders({
      'x-request-id': 'r-1',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      tracestate: 'k=v',
      b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1',
      'x-b3-traceid': 'abc',
      'x-b3-sampled': '1',
      'end-user': 'jason',
      cookie: 'user=jason',
      authorization: 'Bearer secret',
      host: 'productpage:9080',
      'content-length': '12',
      'user-agent': 'curl/8',
    });
    expect(out).toEqual({
      'x-request-id': 'r-1',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      tracestate: 'k=v',
      b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1',
      'x-b3-traceid': 'abc',
      'x-b3-sampled': '1',
      'end-user': 'jason',
    });
  });

  it('joins repeated headers and lists only lower-case names', () => {
    expect(forwardedHeaders({ tracestate: ['a=1', 'b=2'] } as never)).toEqual({ tracestate: 'a=1, b=2' });
    for (const name of FORWARDED_HEADERS) expect(name).toBe(name.toLowerCase());
    expect(forwardedHeaders({})).toEqual({});
  });
});
