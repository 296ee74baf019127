import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PassThrough } from 'node:stream';
import type { AccessLogSettings, HttpRequestStart, TcpConnectionRecord } from '@mizzen/proxy';
import { decodeOtlpRequest } from '@mizzen/xds';
import { describe, expect, it } from 'vitest';
import { AccessLogger, formatAccessLog, ISTIO_JSON_FORMAT, otlpLogsUrl } from '../src/access-log.js';
import { compileExpression, evaluateFilter, requestAttributes } from '../src/attributes.js';
import { PRODUCTPAGE_PEER, REVIEWS_PEER, record } from './records.js';

/** Envoy's access-log formats, CEL filters over Envoy's attributes, and the two sinks. */

const NODE = {
  id: 'sidecar~127.0.0.1~reviews-v2.default~default.svc.cluster.local',
  cluster: 'reviews.default',
};

describe('access-log formats', () => {
  it("Istio's JSON line: typed numbers, null for what is missing, peers' identities", () => {
    const r = record({
      direction: 'inbound',
      peer: PRODUCTPAGE_PEER,
      upstreamCluster: 'inbound|9080||',
      headers: { 'user-agent': 'curl/8', 'x-request-id': 'req-1', 'x-forwarded-for': '10.0.0.1' },
      responseCode: 503,
      responseFlags: 'UO',
      requestBytes: 7,
    });
    const line = JSON.parse(
      formatAccessLog({ kind: 'json', fields: ISTIO_JSON_FORMAT }, { record: r, node: NODE }),
    );
    expect(line).toMatchObject({
      start_time: '2025-01-02T03:04:05.678Z',
      method: 'GET',
      path: '/reviews/0?x=1',
      protocol: 'HTTP/1.1',
      response_code: 503,
      response_flags: 'UO',
      bytes_received: 7,
      bytes_sent: 345,
      duration: 12,
      upstream_service_time: '10',
      x_forwarded_for: '10.0.0.1',
      user_agent: 'curl/8',
      request_id: 'req-1',
      authority: 'reviews:9080',
      upstream_host: '127.0.0.1:15006',
      upstream_cluster: 'inbound|9080||',
      route_name: 'default',
      downstream_remote_address: '127.0.0.1:50000',
      downstream_local_address: '127.0.0.1:15001',
      requested_server_name: null,
      upstream_peer: null,
      downstream_peer: {
        workload: 'productpage-v1',
        namespace: 'default',
        service_account: 'bookinfo-productpage',
      },
    });
  });

  it("says why the proxy answered itself, in Envoy's response_code_details", () => {
    const details = (overrides: Parameters<typeof record>[0]) =>
      JSON.parse(
        formatAccessLog(
          { kind: 'json', fields: ISTIO_JSON_FORMAT },
          { record: record(overrides), node: NODE },
        ),
      ).response_code_details;
    const denied = (policy?: string, deniedBy: 'rbac' | 'ext_authz' = 'rbac') => ({
      direction: 'inbound' as const,
      responseCode: 403,
      upstreamHost: undefined,
      authz: { allowed: false, deniedBy, dryRun: [], audited: [], ...(policy ? { policy } : {}) },
    });
    expect(details({})).toBe('via_upstream');
    // A DENY policy that matched, and an ALLOW policy that nothing matched (Envoy's `[none]`).
    expect(details(denied('ns[default]-policy[deny-get]-rule[0]'))).toBe(
      'rbac_access_denied_matched_policy[ns[default]-policy[deny-get]-rule[0]]',
    );
    expect(details(denied())).toBe('rbac_access_denied_matched_policy[none]');
    expect(details(denied(undefined, 'ext_authz'))).toBe('ext_authz_denied');
    // An authorizer that could not be asked (down, timed out) is Envoy's ext_authz_error.
    const failed = denied(undefined, 'ext_authz');
    expect(details({ ...failed, authz: { ...failed.authz, extAuthzError: true } })).toBe('ext_authz_error');
    // An upstream's own 403 is still the upstream's.
    expect(details({ responseCode: 403, authz: { allowed: true, dryRun: [], audited: [] } })).toBe(
      'via_upstream',
    );
    expect(details({ responseCode: 503, responseFlags: 'FI' })).toBe('fault_filter_abort');
    expect(details({ responseCode: 404, responseFlags: 'NR' })).toBe('route_not_found');
    expect(details({ responseCode: 0, responseFlags: 'DC' })).toBeNull();
  });

  it('text formats with REQ fallbacks, max lengths and the default Istio line', () => {
    const r = record({ headers: { 'x-envoy-original-path': '/orig', 'user-agent': 'a-very-long-agent' } });
    expect(
      formatAccessLog(
        {
          kind: 'text',
          template:
            '%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %REQ(USER-AGENT):6% %RESPONSE_CODE% %NOPE% %ENVIRONMENT(HOME_NOT_SET)%\n',
        },
        { record: r, node: NODE },
      ),
    ).toBe('/orig a-very 200 - -');
    expect(formatAccessLog({ kind: 'default' }, { record: r, node: NODE })).toMatch(
      /^\[2025-01-02T03:04:05.678Z\] "GET \/orig HTTP\/1.1" 200 - via_upstream - "-" 0 345 12 10 "-" "a-very-long-agent" "-" "reviews:9080" "127.0.0.1:15006" outbound\|9080\|v2\|reviews.default.svc.cluster.local - 127.0.0.1:15001 127.0.0.1:50000 - default$/,
    );
  });
});

describe('%DYNAMIC_METADATA(…)%', () => {
  // What the RBAC filter leaves for an istio.io/dry-run DENY policy, and a jwt_authn payload.
  const r = record({
    direction: 'inbound',
    dynamicMetadata: {
      'envoy.filters.http.rbac': {
        istio_dry_run_deny_shadow_effective_policy_id: 'ns[default]-policy[deny-all-dry-run]-rule[0]',
        istio_dry_run_deny_shadow_engine_result: 'denied',
      },
      'envoy.filters.http.jwt_authn': { payload: { iss: 'https://issuer', sub: 'alice', n: 3 } },
    },
  });

  it('prints a key of a filter’s namespace, nested keys, the whole namespace, and - for what is not there', () => {
    const text = (template: string) => formatAccessLog({ kind: 'text', template }, { record: r, node: NODE });
    expect(
      text(
        '%DYNAMIC_METADATA(envoy.filters.http.rbac:istio_dry_run_deny_shadow_effective_policy_id)% %DYNAMIC_METADATA(envoy.filters.http.rbac:istio_dry_run_deny_shadow_engine_result)%',
      ),
    ).toBe('ns[default]-policy[deny-all-dry-run]-rule[0] denied');
    expect(text('%DYNAMIC_METADATA(envoy.filters.http.jwt_authn:payload:sub)%')).toBe('alice');
    expect(
      text('%DYNAMIC_METADATA(envoy.filters.http.rbac:istio_dry_run_deny_shadow_effective_policy_id):9%'),
    ).toBe('ns[defaul');
    expect(
      text('%DYNAMIC_METADATA(envoy.filters.http.jwt_authn:payload:missing)% %DYNAMIC_METADATA(nope)%'),
    ).toBe('- -');
    expect(JSON.parse(text('%DYNAMIC_METADATA(envoy.filters.http.jwt_authn:payload)%'))).toEqual({
      iss: 'https://issuer',
      sub: 'alice',
      n: 3,
    });
  });

  it('keeps types in JSON formats, null when absent', () => {
    const line = JSON.parse(
      formatAccessLog(
        {
          kind: 'json',
          fields: {
            dry_run_policy:
              '%DYNAMIC_METADATA(envoy.filters.http.rbac:istio_dry_run_deny_shadow_effective_policy_id)%',
            n: '%DYNAMIC_METADATA(envoy.filters.http.jwt_authn:payload:n)%',
            allow_shadow:
              '%DYNAMIC_METADATA(envoy.filters.http.rbac:istio_dry_run_allow_shadow_engine_result)%',
          },
        },
        { record: r, node: NODE },
      ),
    );
    expect(line).toEqual({
      dry_run_policy: 'ns[default]-policy[deny-all-dry-run]-rule[0]',
      n: 3,
      allow_shadow: null,
    });
  });
});

describe('CEL filters over Envoy attributes', () => {
  const attrs = (o: Parameters<typeof record>[0]) => requestAttributes(record(o), NODE);
  it.each([
    ['response.code >= 400', {}, false],
    ['response.code >= 400', { responseCode: 503 }, true],
    ["response.flags == 'UO'", { responseFlags: 'UO' }, true],
    ["request.headers['x-user'] == 'jason'", {}, true],
    ["request.method == 'POST'", {}, false],
    ["request.url_path.startsWith('/reviews')", {}, true],
    ['response.size > 100 && request.size == 0', {}, true],
    ["xds.cluster_name.startsWith('outbound|9080|v2')", {}, true],
    ['connection.mtls', { connectionSecurityPolicy: 'mutual_tls' }, true],
    ["request.headers['missing'] == 'x'", {}, false],
    ['response.code', {}, false],
  ] as const)('%s', (expr, overrides, want) => {
    expect(evaluateFilter(compileExpression(expr), attrs(overrides))).toBe(want);
  });

  it('reports expressions that do not parse', () => {
    expect(compileExpression('response.code >=').error).toMatch(/expecting|found/);
  });
});

describe('access-log sinks', () => {
  it('writes filtered JSON lines to stdout and exports OTLP log records whose body is the line', async () => {
    const received: Record<string, unknown>[] = [];
    const receiver = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        expect(req.url).toBe('/v1/logs');
        expect(req.headers['content-type']).toBe('application/x-protobuf');
        received.push(decodeOtlpRequest('logs', Buffer.concat(chunks)));
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
    const port = (receiver.address() as AddressInfo).port;
    const stdout = new PassThrough();
    const lines: string[] = [];
    stdout.on('data', (c: Buffer) => lines.push(...c.toString().split('\n').filter(Boolean)));
    const logger = new AccessLogger({
      node: NODE,
      resource: { 'service.name': 'reviews.default' },
      stdout,
      exportIntervalMs: 10,
    });
    const logs: AccessLogSettings[] = [
      {
        name: 'envoy',
        sink: { kind: 'file', path: '/dev/stdout', format: { kind: 'json', fields: ISTIO_JSON_FORMAT } },
      },
      {
        name: 'otel',
        filter: 'response.code >= 500',
        sink: {
          kind: 'otel',
          logName: 'otel_envoy_accesslog',
          cluster: `outbound|${port}||127.0.0.1`,
          body: { kind: 'default' },
          attributes: { flags: '%RESPONSE_FLAGS%' },
        },
      },
    ];
    const start = { telemetry: { accessLogs: logs } } as unknown as HttpRequestStart;
    logger.startHttp(start)!.end(record({ responseCode: 200 }));
    logger.startHttp(start)!.end(
      record({
        responseCode: 503,
        responseFlags: 'UO',
        headers: { traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' },
      }),
    );
    await logger.flush();
    expect(lines.map((l) => JSON.parse(l).response_code)).toEqual([200, 503]);
    expect(received).toHaveLength(1);
    const rl = (
      received[0]!.resourceLogs as {
        resource: { attributes: unknown[] };
        scopeLogs: { logRecords: Record<string, unknown>[] }[];
      }[]
    )[0]!;
    expect(rl.resource.attributes).toEqual([
      { key: 'service.name', value: { stringValue: 'reviews.default' } },
    ]);
    const [rec] = rl.scopeLogs[0]!.logRecords;
    expect(JSON.parse((rec!.body as { stringValue: string }).stringValue)).toMatchObject({
      response_code: 503,
      response_flags: 'UO',
    });
    expect(rec!.traceId).toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    expect(rec!.attributes).toContainEqual({ key: 'flags', value: { stringValue: 'UO' } });
    await logger.close();
    receiver.close();
  });

  it('resolves OTLP log endpoints from the override or the collector cluster', () => {
    expect(otlpLogsUrl('outbound|4318||otel.observability.svc.cluster.local', undefined)).toBe(
      'http://otel.observability.svc.cluster.local:4318/v1/logs',
    );
    expect(otlpLogsUrl('outbound|4317||x', 'http://127.0.0.1:4318/')).toBe('http://127.0.0.1:4318/v1/logs');
    expect(otlpLogsUrl(undefined, 'http://127.0.0.1:4318/v1/traces')).toBe('http://127.0.0.1:4318/v1/logs');
    expect(otlpLogsUrl('not-a-cluster', undefined)).toBeUndefined();
  });
});

/** A connection as tcp_proxy hands it to observers: the caller known by the metadata exchange. */
function connection(overrides: Partial<TcpConnectionRecord> = {}): TcpConnectionRecord {
  return {
    direction: 'inbound',
    listener: '0.0.0.0_27017',
    upstreamCluster: 'inbound|27017||',
    downstreamRemoteAddress: '10.0.0.7:41234',
    downstreamLocalAddress: '10.0.0.9:27017',
    requestedServerName: 'outbound_.27017_._.mongo.default.svc.cluster.local',
    startTime: new Date('2025-01-02T03:04:05.678Z'),
    upstreamHost: '127.0.0.1:27017',
    upstreamLocalAddress: '127.0.0.6:50123',
    durationMs: 2041.6,
    receivedBytes: 120,
    sentBytes: 4096,
    responseFlags: '-',
    connectionSecurityPolicy: 'mutual_tls',
    peer: PRODUCTPAGE_PEER,
    sourcePrincipal: 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage',
    ...overrides,
  };
}

describe('TCP access logs (tcp_proxy access_log)', () => {
  it("Istio's JSON line for a connection: Envoy's TCP fields, the caller's identity, nothing of HTTP", () => {
    const line = JSON.parse(
      formatAccessLog(
        { kind: 'json', fields: { ...ISTIO_JSON_FORMAT, type: '%ACCESS_LOG_TYPE%' } },
        { connection: connection(), type: 'TcpConnectionEnd', node: NODE },
      ),
    );
    expect(line).toEqual({
      start_time: '2025-01-02T03:04:05.678Z',
      route_name: null,
      method: null,
      path: null,
      protocol: null,
      response_code: 0,
      response_flags: '-',
      response_code_details: null,
      connection_termination_details: null,
      upstream_transport_failure_reason: null,
      bytes_received: 120,
      bytes_sent: 4096,
      duration: 2042,
      upstream_service_time: null,
      x_forwarded_for: null,
      user_agent: null,
      request_id: null,
      authority: null,
      upstream_host: '127.0.0.1:27017',
      upstream_cluster: 'inbound|27017||',
      upstream_local_address: '127.0.0.6:50123',
      downstream_local_address: '10.0.0.9:27017',
      downstream_remote_address: '10.0.0.7:41234',
      requested_server_name: 'outbound_.27017_._.mongo.default.svc.cluster.local',
      upstream_peer: null,
      downstream_peer: {
        workload: 'productpage-v1',
        namespace: 'default',
        service_account: 'bookinfo-productpage',
        app: 'productpage',
        version: 'v1',
        cluster: 'Kubernetes',
        id: PRODUCTPAGE_PEER.id,
      },
      trace_id: null,
      type: 'TcpConnectionEnd',
    });
  });

  it("Istio's text line for a connection that failed upstream: UF and why, the peer URI SANs of each side", () => {
    const failed = connection({
      direction: 'outbound',
      upstreamCluster: 'outbound|27017||mongo.default.svc.cluster.local',
      upstreamLocalAddress: undefined,
      requestedServerName: undefined,
      receivedBytes: 0,
      sentBytes: 0,
      durationMs: 3,
      responseFlags: 'UF',
      upstreamTransportFailureReason: 'connect ECONNREFUSED 127.0.0.1:27017',
      peer: REVIEWS_PEER,
      destinationPrincipal: 'spiffe://cluster.local/ns/default/sa/mongo',
    });
    const ctx = { connection: failed, type: 'TcpConnectionEnd' as const, node: NODE };
    expect(formatAccessLog({ kind: 'default' }, ctx)).toBe(
      '[2025-01-02T03:04:05.678Z] "- - -" 0 UF - - "connect ECONNREFUSED 127.0.0.1:27017" 0 0 3 - "-" "-" "-" "-" "127.0.0.1:27017" outbound|27017||mongo.default.svc.cluster.local - 10.0.0.9:27017 10.0.0.7:41234 - -',
    );
    expect(
      formatAccessLog(
        {
          kind: 'text',
          template: '%DOWNSTREAM_PEER_URI_SAN% %UPSTREAM_PEER_URI_SAN% %FILTER_STATE(upstream_peer)%',
        },
        ctx,
      ),
    ).toBe(
      `- spiffe://cluster.local/ns/default/sa/mongo ${JSON.stringify({
        workload: 'reviews-v2',
        namespace: 'default',
        service_account: 'bookinfo-reviews',
        app: 'reviews',
        version: 'v2',
        cluster: 'Kubernetes',
        id: REVIEWS_PEER.id,
      })}`,
    );
  });

  it('writes a line when a connection ends, once connected and periodically when asked, each through the CEL filter', () => {
    const stdout = new PassThrough();
    const lines: Record<string, unknown>[] = [];
    stdout.on('data', (c: Buffer) =>
      lines.push(
        ...c
          .toString()
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Record<string, unknown>),
      ),
    );
    const logger = new AccessLogger({ node: NODE, resource: {}, stdout });
    const fields = { type: '%ACCESS_LOG_TYPE%', flags: '%RESPONSE_FLAGS%', bytes: '%BYTES_SENT%' };
    const everything: AccessLogSettings = {
      name: 'all',
      sink: { kind: 'file', path: '/dev/stdout', format: { kind: 'json', fields } },
    };
    const failures: AccessLogSettings = {
      name: 'failures',
      filter: "response.flags != '-' && upstream.transport_failure_reason != ''",
      sink: {
        kind: 'file',
        path: '/dev/stdout',
        format: { kind: 'json', fields: { failed: '%RESPONSE_FLAGS%' } },
      },
    };
    // An HTTP-only expression has nothing to read on a connection: false, as Envoy's CEL filter.
    const httpOnly: AccessLogSettings = {
      name: 'http-only',
      filter: 'response.code >= 400',
      sink: {
        kind: 'file',
        path: '/dev/stdout',
        format: { kind: 'json', fields: { http: '%RESPONSE_CODE%' } },
      },
    };
    const start = {
      ...connection(),
      telemetry: { accessLogs: [everything, failures, httpOnly], flushAccessLogOnConnected: true },
    };
    const live = logger.startTcp(start)!;
    live.progress!(connection({ sentBytes: 10 }));
    live.progress!(connection({ sentBytes: 20 }));
    live.flush!(connection({ sentBytes: 30 }));
    live.end(connection({ sentBytes: 40 }));
    const failed = logger.startTcp(start)!;
    failed.end(
      connection({ responseFlags: 'UF', upstreamTransportFailureReason: 'connect timeout', sentBytes: 0 }),
    );
    expect(lines).toEqual([
      { type: 'TcpUpstreamConnected', flags: '-', bytes: 10 },
      { type: 'TcpPeriodic', flags: '-', bytes: 30 },
      { type: 'TcpConnectionEnd', flags: '-', bytes: 40 },
      { type: 'TcpConnectionEnd', flags: 'UF', bytes: 0 },
      { failed: 'UF' },
    ]);
    // A chain without access logs is not observed at all.
    expect(logger.startTcp({ ...connection(), telemetry: {} })).toBeUndefined();
  });
});
