import * as grpc from '@grpc/grpc-js';
import type { Logger } from '@mizzen/runtime';
import {
  ADS_METHOD,
  DELTA_ADS_METHOD,
  type DiscoveryRequest,
  type DiscoveryResponse,
  decodeRequest,
  encodeResponse,
  type XdsNode,
} from './discovery.js';
import type { Snapshot } from './snapshot.js';
import {
  isTypeUrl,
  PUSH_ORDER,
  type ShortType,
  shortType,
  type TypeUrl,
  WILDCARD_TYPES,
} from './type-urls.js';

/** Where a proxy stands for one resource type. */
export type SyncState = 'ACKED' | 'NACKED' | 'SENT' | 'NOT_SENT';

export interface TypeStatus {
  type: ShortType | string;
  typeUrl: string;
  resourceNames: string[] | '*';
  state: SyncState;
  sentVersion?: string;
  ackedVersion?: string;
  nackedVersion?: string;
  /** The reason the proxy gave when it rejected config (NACK). */
  error?: string;
  lastSent?: string;
  lastAcked?: string;
}

export interface StreamStatus {
  streamId: number;
  node: XdsNode;
  peer: string;
  connectedAt: string;
  types: TypeStatus[];
}

export interface AdsServerOptions {
  logger: Logger;
  /** Called once per stream when the proxy's node is known (the first request). */
  onStreamOpen?: (node: XdsNode, streamId: number) => void;
  onStreamClose?: (node: XdsNode, streamId: number) => void;
  /** Called when a proxy rejects config, with its reason. */
  onNack?: (node: XdsNode, typeUrl: string, version: string, message: string) => void;
  /** Called when a proxy accepts config; `latencyMs` is the time since that version was sent. */
  onAck?: (node: XdsNode, typeUrl: string, version: string, latencyMs: number | undefined) => void;
  identifier?: string;
}

interface Subscription {
  typeUrl: TypeUrl;
  wildcard: boolean;
  names: Set<string>;
  sentVersion?: string;
  sentNonce?: string;
  /** Names included in the last response; a change of subscription forces a resend. */
  sentNames?: string;
  ackedVersion?: string;
  nackedVersion?: string;
  error?: string;
  lastSent?: Date;
  lastAcked?: Date;
}

/**
 * One ADS stream (state of the world): tracks what the proxy subscribed to,
 * what was sent with which nonce, and what it ACKed or NACKed.
 */
class AdsStream {
  node?: XdsNode;
  readonly connectedAt = new Date();
  private readonly subs = new Map<TypeUrl, Subscription>();
  private nonce = 0;
  closed = false;

  constructor(
    readonly id: number,
    private readonly call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>,
    private readonly server: AdsServer,
    private readonly log: Logger,
  ) {}

  get peer(): string {
    return this.call.getPeer();
  }

  handle(req: DiscoveryRequest): void {
    if (!this.node) {
      if (!req.node?.id) {
        this.call.destroy(
          Object.assign(new Error('the first DiscoveryRequest must carry node.id'), {
            code: grpc.status.INVALID_ARGUMENT,
          }),
        );
        return;
      }
      this.node = req.node;
      this.server.streamOpened(this);
    }
    if (!isTypeUrl(req.type_url)) {
      this.log.debug({ typeUrl: req.type_url, node: this.node.id }, 'ignoring request for unsupported type');
      return;
    }
    const typeUrl = req.type_url;
    let sub = this.subs.get(typeUrl);
    const nonce = req.response_nonce ?? '';
    if (sub && nonce !== '' && nonce !== sub.sentNonce) {
      // A reply to a response we have since superseded: the proxy will answer the newer one.
      return;
    }
    if (!sub) {
      sub = { typeUrl, wildcard: false, names: new Set() };
      this.subs.set(typeUrl, sub);
    }
    if (nonce !== '' && nonce === sub.sentNonce) {
      if (req.error_detail?.message !== undefined || (req.error_detail?.code ?? 0) !== 0) {
        const message = req.error_detail?.message ?? 'rejected without a reason';
        sub.nackedVersion = sub.sentVersion;
        sub.error = message;
        sub.ackedVersion = req.version_info || sub.ackedVersion;
        this.log.warn(
          { node: this.node.id, type: shortType(typeUrl), version: sub.sentVersion, reason: message },
          'proxy rejected config (NACK)',
        );
        this.server.options.onNack?.(this.node, typeUrl, sub.sentVersion ?? '', message);
      } else {
        sub.ackedVersion = req.version_info ?? '';
        sub.nackedVersion = undefined;
        sub.error = undefined;
        sub.lastAcked = new Date();
        const latency = sub.lastSent ? Date.now() - sub.lastSent.getTime() : undefined;
        this.server.options.onAck?.(this.node, typeUrl, sub.ackedVersion, latency);
      }
    }
    const names = req.resource_names ?? [];
    sub.wildcard = (names.length === 0 && WILDCARD_TYPES.has(typeUrl)) || names.includes('*');
    sub.names = new Set(names.filter((n) => n !== '*'));
    // An initial request (no nonce) always gets an answer, even if the proxy already has this version.
    this.push(typeUrl, nonce === '');
  }

  /** Sends every subscribed type whose content changed, in make-before-break order. */
  pushAll(): void {
    for (const typeUrl of PUSH_ORDER) if (this.subs.has(typeUrl)) this.push(typeUrl, false);
  }

  private push(typeUrl: TypeUrl, force: boolean): void {
    if (this.closed || !this.node) return;
    const sub = this.subs.get(typeUrl);
    const snapshot: Snapshot | undefined = this.server.snapshotFor(this.node.id);
    if (!sub || !snapshot) return;
    const typeSnap = snapshot.get(typeUrl);
    const version = typeSnap?.version ?? '';
    const all = typeSnap ? [...typeSnap.resources.values()] : [];
    const chosen = sub.wildcard ? all : all.filter((r) => sub.names.has(r.name));
    const namesKey = chosen
      .map((r) => r.name)
      .sort()
      .join('\n');
    if (!force && sub.sentVersion === version && sub.sentNames === namesKey) return;
    if (!typeSnap && !force && sub.sentVersion === undefined) return;
    const nonce = String(++this.nonce);
    sub.sentVersion = version;
    sub.sentNonce = nonce;
    sub.sentNames = namesKey;
    sub.lastSent = new Date();
    this.call.write({
      version_info: version,
      type_url: typeUrl,
      nonce,
      resources: chosen.map((r) => r.any),
      control_plane: { identifier: this.server.options.identifier ?? 'mizzen-pilot' },
    });
    this.log.debug(
      { node: this.node.id, type: shortType(typeUrl), version, nonce, resources: chosen.length },
      'pushed',
    );
  }

  status(): StreamStatus {
    const types: TypeStatus[] = [];
    for (const typeUrl of PUSH_ORDER) {
      const sub = this.subs.get(typeUrl);
      if (!sub) continue;
      let state: SyncState = 'NOT_SENT';
      if (sub.nackedVersion !== undefined && sub.nackedVersion === sub.sentVersion) state = 'NACKED';
      else if (sub.sentVersion !== undefined && sub.ackedVersion === sub.sentVersion) state = 'ACKED';
      else if (sub.sentVersion !== undefined) state = 'SENT';
      types.push({
        type: shortType(typeUrl),
        typeUrl,
        resourceNames: sub.wildcard ? '*' : [...sub.names].sort(),
        state,
        sentVersion: sub.sentVersion,
        ackedVersion: sub.ackedVersion,
        nackedVersion: sub.nackedVersion,
        error: sub.error,
        lastSent: sub.lastSent?.toISOString(),
        lastAcked: sub.lastAcked?.toISOString(),
      });
    }
    return {
      streamId: this.id,
      node: this.node ?? { id: '' },
      peer: this.peer,
      connectedAt: this.connectedAt.toISOString(),
      types,
    };
  }
}

/**
 * The Aggregated Discovery Service over gRPC: state-of-the-world xDS v3 with
 * a versioned snapshot per proxy, ACK/NACK tracked by version and nonce.
 * Translation happens elsewhere; this only serves what it is given.
 */
export class AdsServer {
  private readonly grpcServer: grpc.Server;
  private readonly streams = new Map<number, AdsStream>();
  private readonly snapshots = new Map<string, Snapshot>();
  private nextStreamId = 0;
  readonly options: AdsServerOptions;
  private readonly log: Logger;

  constructor(options: AdsServerOptions) {
    this.options = options;
    this.log = options.logger;
    this.grpcServer = new grpc.Server({
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.http2.min_ping_interval_without_data_ms': 5_000,
    });
    this.grpcServer.addService(
      {
        StreamAggregatedResources: {
          path: ADS_METHOD,
          requestStream: true,
          responseStream: true,
          requestDeserialize: decodeRequest,
          requestSerialize: () => Buffer.alloc(0),
          responseSerialize: encodeResponse,
          responseDeserialize: () => ({}) as DiscoveryResponse,
        },
        DeltaAggregatedResources: {
          path: DELTA_ADS_METHOD,
          requestStream: true,
          responseStream: true,
          requestDeserialize: (b: Buffer) => b,
          requestSerialize: (b: Buffer) => b,
          responseSerialize: (b: Buffer) => b,
          responseDeserialize: (b: Buffer) => b,
        },
      },
      {
        StreamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>) =>
          this.accept(call),
        DeltaAggregatedResources: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
          call.destroy(
            Object.assign(new Error('incremental (delta) xDS is not supported; use state-of-the-world ADS'), {
              code: grpc.status.UNIMPLEMENTED,
            }),
          );
        },
      },
    );
  }

  /** Starts serving; resolves with the bound port (useful with port 0). */
  listen(port: number, host = '0.0.0.0'): Promise<number> {
    return new Promise((resolve, reject) => {
      this.grpcServer.bindAsync(
        `${host.includes(':') ? `[${host}]` : host}:${port}`,
        grpc.ServerCredentials.createInsecure(),
        (err, bound) => (err ? reject(err) : resolve(bound)),
      );
    });
  }

  /**
   * Stops serving. Open ADS streams never finish on their own, so they are
   * cancelled; proxies keep their config and reconnect with backoff.
   */
  async close(): Promise<void> {
    for (const stream of this.streams.values()) stream.closed = true;
    this.grpcServer.forceShutdown();
  }

  /** Sets the snapshot a proxy should have; connected streams for it get whatever changed. */
  setSnapshot(nodeId: string, snapshot: Snapshot): void {
    this.snapshots.set(nodeId, snapshot);
    for (const stream of this.streams.values()) {
      if (stream.node?.id === nodeId) stream.pushAll();
    }
  }

  snapshotFor(nodeId: string): Snapshot | undefined {
    return this.snapshots.get(nodeId);
  }

  clearSnapshot(nodeId: string): void {
    this.snapshots.delete(nodeId);
  }

  /** Every open stream with its per-type sync state (for /debug/syncz). */
  status(): StreamStatus[] {
    return [...this.streams.values()].filter((s) => s.node).map((s) => s.status());
  }

  /** Nodes with at least one open stream. */
  connectedNodes(): XdsNode[] {
    const seen = new Map<string, XdsNode>();
    for (const s of this.streams.values()) if (s.node) seen.set(s.node.id, s.node);
    return [...seen.values()];
  }

  /** @internal called by a stream once its node is known */
  streamOpened(stream: AdsStream): void {
    this.log.info({ node: stream.node?.id, stream: stream.id, peer: stream.peer }, 'proxy connected');
    if (stream.node) this.options.onStreamOpen?.(stream.node, stream.id);
  }

  private accept(call: grpc.ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>): void {
    const id = ++this.nextStreamId;
    const stream = new AdsStream(id, call, this, this.log);
    this.streams.set(id, stream);
    let finished = false;
    const finish = (why: string) => {
      if (finished) return;
      finished = true;
      stream.closed = true;
      this.streams.delete(id);
      if (stream.node) {
        this.log.info({ node: stream.node.id, stream: id, why }, 'proxy disconnected');
        this.options.onStreamClose?.(stream.node, id);
      }
    };
    call.on('data', (req: DiscoveryRequest) => {
      try {
        stream.handle(req);
      } catch (err) {
        this.log.error({ err, stream: id }, 'failed to handle discovery request');
      }
    });
    call.on('end', () => {
      finish('stream ended');
      call.end();
    });
    call.on('error', (err) => finish(`stream error: ${err.message}`));
    call.on('cancelled', () => finish('stream cancelled'));
    call.on('close', () => finish('stream closed'));
  }
}
