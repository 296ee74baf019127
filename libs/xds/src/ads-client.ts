import { EventEmitter } from 'node:events';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '@mizzen/runtime';
import { type DecodedResource, decodeResource } from './codec.js';
import {
  ADS_METHOD,
  type DiscoveryRequest,
  type DiscoveryResponse,
  decodeResponse,
  encodeRequest,
  type XdsNode,
} from './discovery.js';
import { isTypeUrl, shortType, type TypeUrl, WILDCARD_TYPES } from './type-urls.js';

export interface AdsClientOptions {
  /** host:port of the xDS server (pilot's 15010). */
  address: string;
  node: XdsNode;
  logger: Logger;
  /**
   * Applies one response. Resolve to accept (ACK); throw to reject (NACK) —
   * the error message is sent to the server as the reason. Calls are serial,
   * in the order responses arrive.
   */
  onResources: (typeUrl: TypeUrl, resources: DecodedResource[], version: string) => Promise<void>;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

interface TypeState {
  wildcard: boolean;
  names: string[];
  /** Last version accepted (ACKed); sent back on reconnect so the server knows what we run. */
  acceptedVersion: string;
  lastNonce: string;
  lastError?: string;
}

export interface AdsClientStatus {
  connected: boolean;
  address: string;
  lastError?: string;
  reconnects: number;
  types: Record<string, { version: string; names: string[] | '*'; error?: string }>;
}

/**
 * The proxy side of ADS: subscribes, applies each response through
 * `onResources`, ACKs or NACKs with the reason, and reconnects with
 * exponential backoff and jitter while keeping what it last accepted.
 */
export class AdsClient extends EventEmitter {
  private readonly client: grpc.Client;
  private readonly types = new Map<TypeUrl, TypeState>();
  private call?: grpc.ClientDuplexStream<DiscoveryRequest, DiscoveryResponse>;
  private queue: Promise<void> = Promise.resolve();
  private stopped = false;
  private connected = false;
  private backoffMs: number;
  private reconnectTimer?: NodeJS.Timeout;
  private firstOnStream = true;
  private lastError?: string;
  private reconnects = 0;
  private streamGeneration = 0;

  constructor(private readonly options: AdsClientOptions) {
    super();
    this.backoffMs = options.initialBackoffMs ?? 250;
    this.client = new grpc.Client(options.address, grpc.credentials.createInsecure(), {
      'grpc.keepalive_time_ms': 30_000,
      'grpc.keepalive_timeout_ms': 10_000,
      'grpc.initial_reconnect_backoff_ms': options.initialBackoffMs ?? 250,
      'grpc.max_reconnect_backoff_ms': options.maxBackoffMs ?? 5_000,
    });
  }

  start(): void {
    this.stopped = false;
    this.open();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    this.call?.cancel();
    this.client.close();
    await this.queue;
  }

  /** Sets the resources wanted for a type ('*' for every resource of a wildcard type). */
  subscribe(typeUrl: TypeUrl, names: readonly string[] | '*'): void {
    const wildcard = names === '*';
    const list = wildcard ? [] : [...new Set(names)].sort();
    const state = this.types.get(typeUrl);
    if (state && state.wildcard === wildcard && state.names.join('\n') === list.join('\n')) return;
    if (wildcard && !WILDCARD_TYPES.has(typeUrl))
      throw new Error(`${shortType(typeUrl)} has no wildcard subscription`);
    const next: TypeState = state ?? { wildcard, names: list, acceptedVersion: '', lastNonce: '' };
    next.wildcard = wildcard;
    next.names = list;
    this.types.set(typeUrl, next);
    if (this.call && this.connected) this.send(typeUrl);
  }

  isConnected(): boolean {
    return this.connected;
  }

  status(): AdsClientStatus {
    const types: AdsClientStatus['types'] = {};
    for (const [typeUrl, s] of this.types) {
      types[shortType(typeUrl)] = {
        version: s.acceptedVersion,
        names: s.wildcard ? '*' : s.names,
        error: s.lastError,
      };
    }
    return {
      connected: this.connected,
      address: this.options.address,
      lastError: this.lastError,
      reconnects: this.reconnects,
      types,
    };
  }

  private open(): void {
    if (this.stopped) return;
    const generation = ++this.streamGeneration;
    const call = this.client.makeBidiStreamRequest<DiscoveryRequest, DiscoveryResponse>(
      ADS_METHOD,
      encodeRequest,
      decodeResponse,
    );
    this.call = call;
    this.firstOnStream = true;
    this.connected = true;
    // Initial requests carry the versions we already run, so an unchanged server has nothing to resend.
    for (const typeUrl of this.types.keys()) this.send(typeUrl, true);
    call.on('metadata', () => {
      this.backoffMs = this.options.initialBackoffMs ?? 250;
      this.lastError = undefined;
      this.emit('connected');
    });
    call.on('data', (res: DiscoveryResponse) => {
      if (generation !== this.streamGeneration) return;
      this.queue = this.queue.then(() => this.handle(res, generation));
    });
    const lost = (why: string) => {
      if (generation !== this.streamGeneration) return;
      this.streamGeneration++;
      this.connected = false;
      this.call = undefined;
      if (this.stopped) return;
      this.lastError = why;
      this.emit('disconnected', why);
      this.scheduleReconnect(why);
    };
    call.on('error', (err: grpc.ServiceError) => lost(err.details || err.message));
    call.on('end', () => lost('stream ended by server'));
  }

  private scheduleReconnect(why: string): void {
    const jitter = 0.8 + Math.random() * 0.4;
    const delay = Math.round(this.backoffMs * jitter);
    this.options.logger.warn(
      { why, retryInMs: delay },
      'lost connection to the xDS server; keeping last good config',
    );
    this.backoffMs = Math.min(this.backoffMs * 2, this.options.maxBackoffMs ?? 5_000);
    this.reconnects++;
    this.reconnectTimer = setTimeout(() => this.open(), delay);
  }

  private send(typeUrl: TypeUrl, initial = false, error?: string): void {
    const state = this.types.get(typeUrl);
    if (!state || !this.call) return;
    const req: DiscoveryRequest = {
      type_url: typeUrl,
      version_info: state.acceptedVersion,
      resource_names: state.wildcard ? [] : state.names,
      response_nonce: initial ? '' : state.lastNonce,
    };
    if (this.firstOnStream) {
      req.node = this.options.node;
      this.firstOnStream = false;
    }
    if (error !== undefined) req.error_detail = { code: grpc.status.INVALID_ARGUMENT, message: error };
    this.call.write(req);
  }

  private async handle(res: DiscoveryResponse, generation: number): Promise<void> {
    if (!isTypeUrl(res.type_url)) return;
    const typeUrl = res.type_url;
    const state = this.types.get(typeUrl);
    if (!state) return;
    state.lastNonce = res.nonce;
    let error: string | undefined;
    try {
      const decoded = res.resources.map((any) => {
        if (any.type_url !== typeUrl)
          throw new Error(`resource of type ${any.type_url} in a ${shortType(typeUrl)} response`);
        return decodeResource(any);
      });
      await this.options.onResources(typeUrl, decoded, res.version_info);
    } catch (err) {
      error = (err as Error).message || String(err);
    }
    if (generation !== this.streamGeneration) return;
    if (error === undefined) {
      state.acceptedVersion = res.version_info;
      state.lastError = undefined;
      this.send(typeUrl);
    } else {
      state.lastError = error;
      this.options.logger.warn(
        { type: shortType(typeUrl), version: res.version_info, reason: error },
        'rejected config (NACK); keeping the last good config',
      );
      this.send(typeUrl, false, error);
    }
    this.emit('applied', { typeUrl, version: res.version_info, error });
  }
}
