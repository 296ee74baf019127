import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { applyHeaderMutations, type HeaderMap, type HeaderMutation } from '../config/headers.js';
import type { RetryPolicy } from '../config/retry-policy.js';
import type { ProxyEndpoint } from '../listeners/proxy-protocol.js';
import { PEER_ID_HEADER, PEER_METADATA_HEADER, takePeerHeaders } from '../observe/peer-metadata.js';
import type { TrafficDirection } from '../observe/records.js';
import type { UpstreamTls } from '../security/tls-provider.js';
import type { Release, SlotKind } from '../upstream/circuit-breaker.js';
import type { ClusterManager, ClusterRuntime, OriginalDestination } from '../upstream/cluster-manager.js';
import { proxyHeaderOf } from '../upstream/connect.js';
import {
  type ConnectionPools,
  sourceAddressFor,
  type UpstreamProtocol,
} from '../upstream/connection-pools.js';
import type { UpstreamHost } from '../upstream/host.js';
import type { AttemptOutcome } from '../upstream/outlier-detector.js';
import type { UpstreamResponse } from '../upstream/upstream-response.js';
import { Cancellation } from './cancellation.js';
import type { ResponseDecorator } from './filters/filter.js';
import { endToEndHeaders } from './headers.js';
import { LocalReplies, sendLocalReply } from './local-reply.js';
import type { RequestBody } from './request-body.js';
import type { ResponseFlag, StreamInfo } from './stream-info.js';
import { joinStreams, openUpgradeTunnel, type UpgradeRequest } from './upgrade-tunnel.js';

export interface UpstreamRequest {
  readonly method: string;
  /** Origin-form path, rewrites applied. */
  readonly path: string;
  /** End-to-end headers with every mutation applied; `host` is the authority to send. */
  readonly headers: HeaderMap;
  readonly body: RequestBody;
  /** 0: no timeout. Covers every attempt, from the first byte sent to the last byte received. */
  readonly timeoutMs: number;
  readonly retry?: RetryPolicy;
  readonly includeAttemptCount: boolean;
  readonly originalDst?: OriginalDestination;
  /** Response header edits, most specific first (weighted cluster, route, virtual host, route table). */
  readonly responseMutations: readonly HeaderMutation[];
  /** Which side of the workload the request is on: sidecars exchange peer metadata across the hop. */
  readonly direction?: TrafficDirection;
  /** The downstream spoke HTTP/2 (clusters that follow the downstream protocol use it too). */
  readonly downstreamHttp2?: boolean;
  /** The request's consistent-hash key, for RING_HASH and MAGLEV clusters. */
  readonly hash?: bigint;
  /** Response edits from HTTP filters (CORS…), applied last. */
  readonly decorators?: readonly ResponseDecorator[];
  /** The downstream connection's ends, for clusters that send a PROXY protocol header upstream. */
  readonly downstream?: { readonly source: ProxyEndpoint; readonly destination: ProxyEndpoint };
}

/** The answer to a side call ({@link Router.call}). */
export interface SideCallResponse {
  status: number;
  headers: Readonly<Record<string, string | string[] | undefined>>;
  body: string;
}

type FailureKind =
  | 'connect-failure'
  | 'reset'
  | 'refused-stream'
  | 'pool-closed'
  | 'local-reset'
  | 'per-try-timeout'
  | 'timeout'
  | 'downstream-closed';

class AttemptFailure extends Error {
  constructor(
    readonly kind: FailureKind,
    cause: unknown,
  ) {
    super(kind, { cause });
  }
}

const CONNECT_FAILURE_CODES = new Set([
  'ECONNREFUSED',
  'UND_ERR_CONNECT_TIMEOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'TLS_CONTEXT_UNAVAILABLE',
  'H2_CONNECT_FAILED',
  'UPSTREAM_CONNECT_FAILED',
]);

/** gRPC status codes by the retry_on name Envoy gives them. */
const GRPC_RETRY: Record<string, string> = {
  cancelled: '1',
  'deadline-exceeded': '4',
  'resource-exhausted': '8',
  internal: '13',
  unavailable: '14',
};

function classify(err: unknown): FailureKind {
  if (err instanceof AttemptFailure) return err.kind;
  const code = (err as { code?: string }).code ?? '';
  if (CONNECT_FAILURE_CODES.has(code)) return 'connect-failure';
  // A TLS handshake that fails (untrusted or wrong certificate, no context yet) never carried the request.
  if (code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || /CERT|VERIFY|SELF_SIGNED/.test(code)) {
    return 'connect-failure';
  }
  // A pool retired (closed) just as we picked it, or a stream the server's GOAWAY says it never processed.
  if (code === 'UND_ERR_CLOSED' || code === 'H2_GOAWAY_UNPROCESSED') return 'pool-closed';
  // Our own connection torn down under the request (the proxy is stopping): Envoy's local reset.
  if (code === 'UND_ERR_DESTROYED') return 'local-reset';
  if (code === 'REFUSED_STREAM') return 'refused-stream';
  return 'reset';
}

/**
 * Would Envoy retry this failure (RetryStateImpl::wouldRetryFromReset)?
 * Only the route's retry policy decides: no policy (`retries: {attempts: 0}`)
 * means no retry of any kind. 5xx, gateway-error and reset take every reset;
 * connect-failure and refused-stream only their own.
 */
function retriableFailure(kind: FailureKind, policy: RetryPolicy | undefined): boolean {
  if (!policy) return false;
  const any = (...names: string[]) => names.some((n) => policy.conditions.has(n));
  switch (kind) {
    case 'connect-failure':
      return any('connect-failure', '5xx', 'gateway-error', 'reset', 'reset-before-request');
    case 'reset':
    case 'per-try-timeout':
      return any('reset', '5xx', 'gateway-error');
    case 'refused-stream':
      return any('refused-stream', '5xx', 'gateway-error', 'reset');
    default:
      // A route timeout or a vanished downstream ends the request; a local reset means we are stopping.
      return false;
  }
}

/** The response flag and local reply for a failed last attempt, as Envoy's router sends them. */
function failureReply(kind: FailureKind): { flag: ResponseFlag; status: number; body: string } {
  switch (kind) {
    case 'per-try-timeout':
      return { flag: 'UT', status: 504, body: LocalReplies.upstreamTimeout };
    case 'connect-failure':
      return { flag: 'UF', status: 503, body: LocalReplies.connectFailure };
    case 'local-reset':
      return { flag: 'LR', status: 503, body: LocalReplies.localReset };
    case 'refused-stream':
      return { flag: 'UR', status: 503, body: LocalReplies.refusedStream };
    default:
      return { flag: 'UC', status: 503, body: LocalReplies.reset };
  }
}

/**
 * A reply the router makes itself (no host, overflow, timeout, failed
 * attempts). As Envoy's router does, the route's response header edits and
 * the filters' (CORS) apply to it as to an upstream answer.
 */
function localReply(
  res: ServerResponse,
  req: Pick<UpstreamRequest, 'responseMutations' | 'decorators'>,
  status: number,
  body: string,
  extra: Record<string, string> = {},
): void {
  const headers: HeaderMap = { ...extra };
  applyHeaderMutations(headers, req.responseMutations);
  for (const d of req.decorators ?? []) d(status, headers);
  sendLocalReply(res, status, body, headers as Record<string, string | string[]>);
}

/** A pool that closes under us again and again is a fault, not a race: stop re-sending after this many. */
const MAX_POOL_CLOSED_RESENDS = 3;

function shouldRetryResponse(
  status: number,
  headers: Record<string, string | string[] | undefined>,
  policy: RetryPolicy,
): boolean {
  const c = policy.conditions;
  if (c.has('5xx') && status >= 500) return true;
  if (c.has('gateway-error') && (status === 502 || status === 503 || status === 504)) return true;
  if (c.has('retriable-4xx') && status === 409) return true;
  if (c.has('retriable-status-codes') && policy.retriableStatusCodes.has(status)) return true;
  if (c.has('envoy-ratelimited') && headers['x-envoy-ratelimited'] !== undefined) return true;
  const grpc = headers['grpc-status'];
  if (typeof grpc === 'string') {
    for (const [name, code] of Object.entries(GRPC_RETRY)) if (c.has(name) && grpc === code) return true;
  }
  return false;
}

/**
 * HTTP/2 to a cluster that asks for it (gRPC, HTTP2 ports, h2UpgradePolicy
 * UPGRADE), to a host with a sidecar when pilot marks the cluster for the
 * mesh's sidecar upgrade (sidecars multiplex between themselves whatever the
 * app speaks), or when the cluster follows the downstream and that was HTTP/2.
 */
function upstreamProtocol(
  cluster: ClusterRuntime,
  host: UpstreamHost,
  downstreamHttp2: boolean | undefined,
): UpstreamProtocol {
  const http = cluster.config.http;
  if (http.protocol === 'http2') return 'http2';
  if (http.protocol === 'downstream') return downstreamHttp2 ? 'http2' : 'http1';
  return host.sidecar && http.upgradeSidecarsToHttp2 ? 'http2' : 'http1';
}

/**
 * How a request counts against the circuit breaker. HTTP/2 the cluster asks
 * for (gRPC, HTTP2 ports, h2UpgradePolicy UPGRADE) multiplexes, as Envoy
 * counts it; the mesh's own HTTP/2 between sidecars only changes the
 * transport, so limits count as Istio's HTTP/1.1 between sidecars would —
 * one connection per request in flight (Istio's circuit-breaking task holds).
 */
function slotKind(cluster: ClusterRuntime, downstreamHttp2: boolean | undefined): SlotKind {
  const http = cluster.config.http;
  if (http.protocol === 'http2' || (http.protocol === 'downstream' && downstreamHttp2)) return 'http2';
  return 'http1';
}

/** How an upstream answer counts for outlier detection. */
function outcomeOf(status: number): AttemptOutcome {
  if (status === 502 || status === 503 || status === 504) return 'gateway-error';
  return status >= 500 ? '5xx' : 'success';
}

/** Envoy's fully jittered exponential back-off: retry N waits a random time in [0, (2^N − 1) × base), capped at max. */
function backoffMs(policy: RetryPolicy | undefined, retryNumber: number): number {
  const base = policy?.baseIntervalMs ?? 25;
  const max = policy?.maxIntervalMs ?? 250;
  return Math.random() * Math.min(max, base * (2 ** retryNumber - 1));
}

/**
 * Envoy's router filter: picks a host of the cluster for each attempt, sends
 * over a pooled keep-alive connection, applies the route timeout, per-try
 * timeout and retry policy, and streams the response back.
 */
export class Router {
  constructor(
    private readonly clusters: ClusterManager,
    private readonly pools: ConnectionPools,
    /** This proxy's metadata-exchange headers (Istio's x-envoy-peer-metadata), when it is a sidecar or gateway in the mesh. */
    readonly identity?: { id: string; metadata: string },
  ) {}

  async forward(
    clusterName: string,
    req: UpstreamRequest,
    res: ServerResponse,
    info: StreamInfo,
  ): Promise<void> {
    info.upstreamCluster = clusterName;
    const cluster = this.clusters.get(clusterName);
    if (!cluster) {
      info.flag('NC');
      localReply(res, req, 503, LocalReplies.noCluster);
      return;
    }
    const overall = new Cancellation();
    const onDownstreamClose = () => {
      if (!res.writableFinished) {
        info.flag('DC');
        overall.abort(new AttemptFailure('downstream-closed', undefined));
      }
    };
    res.once('close', onDownstreamClose);
    const timer =
      req.timeoutMs > 0
        ? setTimeout(() => overall.abort(new AttemptFailure('timeout', undefined)), req.timeoutMs)
        : undefined;
    try {
      await this.attempts(cluster, req, res, info, overall);
    } finally {
      clearTimeout(timer);
      res.off('close', onDownstreamClose);
    }
  }

  private async attempts(
    cluster: ClusterRuntime,
    req: UpstreamRequest,
    res: ServerResponse,
    info: StreamInfo,
    overall: Cancellation,
  ): Promise<void> {
    const replayable = req.body.kind !== 'stream';
    const maxRetries = replayable ? (req.retry?.numRetries ?? 0) : 0;
    // Hosts already tried, avoided by later attempts only under the previous_hosts predicate.
    const tried = new Set<string>();
    // Every host attempted, in order, for the route's retry priority (retryRemoteLocalities).
    const attempted: UpstreamHost[] = [];
    const retryPriority = req.retry?.priority
      ? { updateFrequency: req.retry.priority.updateFrequency, attempted }
      : undefined;
    let retries = 0;
    let resends = 0;
    let retryBudget: Release | undefined;
    /**
     * Envoy's retry decision once a failure or answer is retriable: a retry
     * within num_retries that the cluster's retry budget (max_retries) admits;
     * otherwise the request ends flagged URX (limit reached) or UO (budget).
     */
    const mayRetry = (): boolean => {
      if (retries >= maxRetries) {
        if (maxRetries > 0) info.flag('URX');
        return false;
      }
      retryBudget?.();
      retryBudget = undefined;
      const verdict = cluster.breaker.tryRetry();
      if (verdict === 'overflow') {
        info.flag('UO');
        return false;
      }
      retryBudget = verdict;
      retries++;
      return true;
    };
    try {
      for (let attempt = 1; ; attempt++) {
        info.attempts = attempt;
        const avoid = req.retry?.avoidPreviousHosts ? tried : undefined;
        const host = cluster.pick(req.originalDst, {
          exclude: avoid,
          hash: req.hash,
          retry: retryPriority,
          selectionAttempts: req.retry?.hostSelectionAttempts,
        });
        if (!host) {
          info.flag('UH');
          localReply(res, req, 503, LocalReplies.noHealthyUpstream);
          return;
        }
        const release = await this.slot(cluster, overall, slotKind(cluster, req.downstreamHttp2));
        if (release === 'overflow') {
          info.flag('UO');
          localReply(res, req, 503, LocalReplies.overflow, { 'x-envoy-overloaded': 'true' });
          return;
        }
        if (!release) return this.ended(overall, res, info, req);
        tried.add(host.key);
        attempted.push(host);
        info.upstreamHost = host.key;
        let response: UpstreamResponse;
        const started = performance.now();
        try {
          response = await this.send(cluster, host, req, attempt, overall, info);
        } catch (err) {
          release();
          const kind = classify(err);
          if (kind === 'timeout' || kind === 'downstream-closed') return this.ended(overall, res, info, req);
          if (kind === 'pool-closed' && resends < MAX_POOL_CLOSED_RESENDS) {
            // Never written: send it again on a live connection, outside the retry policy's count.
            resends++;
            attempted.pop();
            tried.delete(host.key);
            continue;
          }
          if (kind !== 'pool-closed' && kind !== 'local-reset') cluster.report(host.key, 'local-failure');
          if (retriableFailure(kind, req.retry) && mayRetry()) {
            await this.pause(req.retry, retries, overall);
            continue;
          }
          const reply = failureReply(kind);
          info.flag(reply.flag);
          localReply(res, req, reply.status, reply.body);
          return;
        }
        cluster.report(host.key, outcomeOf(response.statusCode));
        const retriable =
          req.retry !== undefined && shouldRetryResponse(response.statusCode, response.headers, req.retry);
        if (retriable && mayRetry()) {
          response.body.on('error', () => {});
          response.body.once('end', release);
          response.body.once('close', release);
          response.body.resume();
          await this.pause(req.retry, retries, overall);
          continue;
        }
        info.upstreamServiceTimeMs = performance.now() - started;
        try {
          await this.respond(response, req, res, info, overall);
        } finally {
          release();
        }
        return;
      }
    } finally {
      retryBudget?.();
    }
  }

  /** A request slot from the cluster's circuit breaker, waiting in its pending queue if need be. */
  private async slot(
    cluster: ClusterRuntime,
    overall: Cancellation,
    kind: SlotKind,
  ): Promise<Release | 'overflow' | undefined> {
    const slot = cluster.breaker.acquire(kind, { onAbandon: (cb) => overall.once('abort', cb) });
    if (slot === 'overflow' || typeof slot === 'function') return slot;
    if (overall.aborted) return undefined;
    return Promise.race([
      slot,
      new Promise<undefined>((resolve) => overall.once('abort', () => resolve(undefined))),
    ]);
  }

  /** The request ended on the router's side: the route timeout fired, or the downstream went away. */
  private ended(overall: Cancellation, res: ServerResponse, info: StreamInfo, req: UpstreamRequest): void {
    if ((overall.reason as AttemptFailure | undefined)?.kind === 'timeout') {
      info.flag('UT');
      localReply(res, req, 504, LocalReplies.upstreamTimeout);
    }
  }

  /**
   * A mirrored copy of a request (VirtualService `mirror`): one attempt, no
   * retries, answer and errors discarded. It still takes a slot from the
   * mirror cluster's circuit breaker, so shadows cannot swamp it.
   */
  shadow(
    clusterName: string,
    req: Pick<UpstreamRequest, 'method' | 'path' | 'headers' | 'body' | 'originalDst'>,
  ): void {
    const cluster = this.clusters.get(clusterName);
    const host = cluster?.pick(req.originalDst);
    if (!cluster || !host) return;
    const slot = cluster.breaker.tryAcquire(slotKind(cluster, false));
    if (!slot) return;
    void this.pools
      .dispatch(
        host,
        cluster.connectionSettings,
        upstreamProtocol(cluster, host, false),
        {
          method: req.method,
          path: req.path,
          headers: req.headers,
          body: req.body.kind === 'buffered' ? req.body.data : null,
          signal: new Cancellation(),
        },
        this.shadowTls(cluster, host),
        cluster.proxyProtocolStamp(undefined),
      )
      .then(
        (res) => {
          cluster.report(host.key, outcomeOf(res.statusCode));
          res.body.on('error', () => {});
          res.body.once('close', slot);
          res.body.resume();
        },
        () => {
          cluster.report(host.key, 'local-failure');
          slot();
        },
      );
  }

  /**
   * A request the proxy makes on its own behalf (an external authorizer's
   * check): one attempt to a host of `clusterName` through its pools, circuit
   * breaker and TLS, bounded by `timeoutMs`, the answer's body read up to
   * `maxBodyBytes`. Rejects when the cluster is unknown, has no host, is
   * overflowing, the host fails or time runs out.
   */
  async call(
    clusterName: string,
    req: { method: string; path: string; headers: HeaderMap; body?: Buffer },
    timeoutMs: number,
    maxBodyBytes = 64 * 1024,
  ): Promise<SideCallResponse> {
    const cluster = this.clusters.get(clusterName);
    if (!cluster) throw new Error(`cluster ${clusterName} is not configured`);
    const host = cluster.pick();
    if (!host) throw new Error(`cluster ${clusterName} has no healthy host`);
    const slot = cluster.breaker.tryAcquire(slotKind(cluster, false));
    if (!slot) throw new Error(`cluster ${clusterName} is overflowing`);
    const signal = new Cancellation();
    const timer = setTimeout(
      () => signal.abort(new Error(`no answer from ${clusterName} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    try {
      const res = await this.pools.dispatch(
        host,
        cluster.connectionSettings,
        upstreamProtocol(cluster, host, false),
        { method: req.method, path: req.path, headers: req.headers, body: req.body ?? null, signal },
        this.tlsFor(cluster, host),
        cluster.proxyProtocolStamp(undefined),
      );
      cluster.report(host.key, outcomeOf(res.statusCode));
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of res.body as AsyncIterable<Buffer>) {
        if (signal.aborted) throw signal.reason;
        size += chunk.length;
        if (size <= maxBodyBytes) chunks.push(chunk);
      }
      return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString() };
    } catch (err) {
      cluster.report(host.key, 'local-failure');
      throw signal.aborted ? signal.reason : err;
    } finally {
      clearTimeout(timer);
      slot();
    }
  }

  /**
   * A protocol upgrade (WebSocket): one attempt to one host over HTTP/1.1
   * (TLS when the cluster says so), then the client and the upstream are
   * joined byte for byte. The cluster's circuit breaker counts the tunnel
   * until it closes; failures before the 101 are answered as Envoy does.
   */
  async upgrade(
    clusterName: string,
    req: UpgradeRequest & {
      originalDst?: OriginalDestination;
      hash?: bigint;
      timeoutMs: number;
      downstream?: UpstreamRequest['downstream'];
    },
    downstream: Duplex,
    res: ServerResponse,
    info: StreamInfo,
  ): Promise<void> {
    info.upstreamCluster = clusterName;
    info.attempts = 1;
    const cluster = this.clusters.get(clusterName);
    if (!cluster) {
      info.flag('NC');
      sendLocalReply(res, 503, LocalReplies.noCluster);
      return;
    }
    const host = cluster.pick(req.originalDst, { hash: req.hash });
    if (!host) {
      info.flag('UH');
      sendLocalReply(res, 503, LocalReplies.noHealthyUpstream);
      return;
    }
    // An upgraded tunnel holds an HTTP/1.1 connection for as long as it lasts.
    const slot = cluster.breaker.tryAcquire('http1');
    if (!slot) {
      info.flag('UO');
      sendLocalReply(res, 503, LocalReplies.overflow, { 'x-envoy-overloaded': 'true' });
      return;
    }
    info.upstreamHost = host.key;
    let secure: UpstreamTls | undefined;
    try {
      secure = this.tlsFor(cluster, host);
    } catch {
      slot();
      info.flag('UF');
      sendLocalReply(res, 503, LocalReplies.connectFailure);
      return;
    }
    info.upstreamMtls = secure?.mutual ?? false;
    info.upstreamTls = secure;
    const outcome = await openUpgradeTunnel(host, req, downstream, {
      ...(secure ? { tls: secure } : {}),
      connectTimeoutMs: cluster.connectionSettings.connectTimeoutMs,
      headTimeoutMs: req.timeoutMs,
      localAddress: sourceAddressFor(cluster.connectionSettings.sourceAddresses, host.address),
      keepalive: cluster.connectionSettings.tcpKeepalive,
      proxyHeader: proxyHeaderOf(cluster.proxyProtocolStamp(req.downstream)),
    });
    if (outcome.kind === 'failed') {
      slot();
      cluster.report(host.key, 'local-failure');
      const timeout = outcome.reason === 'timeout';
      info.flag(outcome.reason === 'connect-failure' ? 'UF' : timeout ? 'UT' : 'UC');
      sendLocalReply(
        res,
        timeout ? 504 : 503,
        timeout
          ? LocalReplies.upstreamTimeout
          : outcome.reason === 'connect-failure'
            ? LocalReplies.connectFailure
            : LocalReplies.reset,
      );
      return;
    }
    info.responseCode = outcome.status;
    cluster.report(host.key, outcomeOf(outcome.status));
    if (outcome.kind === 'refused') {
      downstream.once('close', slot);
      return;
    }
    joinStreams(downstream, outcome.upstream, slot);
  }

  private shadowTls(cluster: ClusterRuntime, host: UpstreamHost): UpstreamTls | undefined {
    try {
      return this.tlsFor(cluster, host);
    } catch {
      return undefined;
    }
  }

  /** Waits out the retry back-off; an overall timeout during it still ends the request. */
  private async pause(
    policy: RetryPolicy | undefined,
    attempt: number,
    overall: Cancellation,
  ): Promise<void> {
    // An overall timeout or a vanished downstream ends the wait early; the next send sees it.
    await overall.sleep(backoffMs(policy, attempt));
  }

  /** The TLS an attempt to this host needs; a context that cannot be built yet fails the attempt as a connect failure. */
  private tlsFor(cluster: ClusterRuntime, host: UpstreamHost): UpstreamTls | undefined {
    const provider = cluster.tlsFor(host);
    if (!provider) return undefined;
    const secure = provider.upstream(host);
    if ('error' in secure) throw Object.assign(new Error(secure.error), { code: 'TLS_CONTEXT_UNAVAILABLE' });
    return secure;
  }

  private async send(
    cluster: ClusterRuntime,
    host: UpstreamHost,
    req: UpstreamRequest,
    attempt: number,
    overall: Cancellation,
    info?: StreamInfo,
  ): Promise<UpstreamResponse> {
    if (overall.aborted) throw overall.reason;
    const secure = this.tlsFor(cluster, host);
    if (info) {
      info.upstreamMtls = secure?.mutual ?? false;
      info.upstreamTls = secure;
    }
    const attemptSignal = new Cancellation();
    const forward = () => attemptSignal.abort(overall.reason);
    overall.once('abort', forward);
    const perTry = req.retry?.perTryTimeoutMs;
    const timer = perTry
      ? setTimeout(() => attemptSignal.abort(new AttemptFailure('per-try-timeout', undefined)), perTry)
      : undefined;
    let headers = req.includeAttemptCount
      ? { ...req.headers, 'x-envoy-attempt-count': String(attempt) }
      : req.headers;
    if (this.identity && req.direction === 'outbound' && host.sidecar) {
      // Tell the sidecar on the other side who is calling (Istio's metadata exchange).
      headers = {
        ...headers,
        [PEER_ID_HEADER]: this.identity.id,
        [PEER_METADATA_HEADER]: this.identity.metadata,
      };
    }
    try {
      return await this.pools.dispatch(
        host,
        cluster.connectionSettings,
        upstreamProtocol(cluster, host, req.downstreamHttp2),
        {
          method: req.method,
          path: req.path,
          headers,
          body:
            req.body.kind === 'buffered'
              ? req.body.data
              : req.body.kind === 'stream'
                ? req.body.stream
                : null,
          signal: attemptSignal,
        },
        secure,
        cluster.proxyProtocolStamp(req.downstream),
      );
    } catch (err) {
      // An abort surfaces as undici's own error; report why we aborted instead.
      if (attemptSignal.aborted && attemptSignal.reason instanceof AttemptFailure) {
        throw attemptSignal.reason;
      }
      throw err;
    } finally {
      clearTimeout(timer);
      overall.off('abort', forward);
    }
  }

  private respond(
    upstream: UpstreamResponse,
    req: UpstreamRequest,
    res: ServerResponse,
    info: StreamInfo,
    overall: Cancellation,
  ): Promise<void> {
    const headers = endToEndHeaders(upstream.headers);
    // The callee's sidecar said who it is: keep that for telemetry, never pass it on to the app.
    const calleePeer = takePeerHeaders(headers);
    if (req.direction === 'outbound') info.peer = calleePeer;
    if (this.identity && req.direction === 'inbound' && info.peer) {
      headers[PEER_ID_HEADER] = this.identity.id;
      headers[PEER_METADATA_HEADER] = this.identity.metadata;
    }
    if (typeof headers['grpc-status'] === 'string') info.grpcStatus = headers['grpc-status'];
    headers['x-envoy-upstream-service-time'] = String(Math.round(info.upstreamServiceTimeMs ?? 0));
    applyHeaderMutations(headers, req.responseMutations);
    for (const d of req.decorators ?? []) d(upstream.statusCode, headers);
    info.responseCode = upstream.statusCode;
    if (res.destroyed) {
      upstream.body.destroy();
      return Promise.resolve();
    }
    const h2Stream = (res as unknown as { stream?: import('node:http2').ServerHttp2Stream }).stream;
    if (upstream.headersOnly && h2Stream) {
      // Keep a trailers-only answer trailers-only: gRPC clients read grpc-status from it only then.
      upstream.body.resume();
      h2Stream.respond(
        { ':status': upstream.statusCode, ...(headers as Record<string, string | string[]>) },
        { endStream: true },
      );
      return Promise.resolve();
    }
    res.writeHead(upstream.statusCode, headers as Record<string, string | string[]>);
    // The route timeout covers the body too: if it fires mid-stream, the stream is cut.
    // (Plain pipe rather than stream.pipeline: pipeline allocates an AbortController per call.)
    const body = upstream.body;
    return new Promise((resolve) => {
      let done = false;
      const finish = (failed: boolean) => {
        if (done) return;
        done = true;
        overall.off('abort', onAbort);
        if (failed) {
          body.destroy();
          if (!res.destroyed) res.destroy();
        }
        resolve();
      };
      const onAbort = () => finish(true);
      overall.once('abort', onAbort);
      body.once('error', () => finish(true));
      res.once('finish', () => finish(false));
      res.once('close', () => finish(!res.writableFinished));
      // Trailers (gRPC's grpc-status) follow the body; HTTP/1.1 clients get them only with chunked encoding.
      body.on('data', (chunk: Buffer) => {
        info.responseBytes += chunk.length;
      });
      body.once('end', () => {
        const trailers = endToEndHeaders(upstream.trailers());
        if (typeof trailers['grpc-status'] === 'string') info.grpcStatus = trailers['grpc-status'];
        if (Object.keys(trailers).length) res.addTrailers(trailers as Record<string, string>);
        res.end();
      });
      body.pipe(res, { end: false });
    });
  }
}
