import { decodeMessage, encodeMessage, type XdsNode } from '@mizzen/xds';
import { PEER_ID_HEADER, PEER_METADATA_HEADER, peerFromStruct, peerMetadataStruct } from './peer-metadata.js';
import type { PeerMetadata } from './records.js';

/**
 * Istio's TCP metadata exchange (the `istio.metadata_exchange` network
 * filter), on the wire: when both sidecars of a mutual-TLS connection agreed
 * on the ALPN `istio-peer-exchange`, each writes one header before anything
 * else — a 4-byte magic, a 4-byte length (both big-endian), then that many
 * bytes of a protobuf `google.protobuf.Any` holding a `google.protobuf.Struct`
 * with `x-envoy-peer-metadata` (the node's workload metadata) and
 * `x-envoy-peer-metadata-id` (its node id) — and reads the other side's.
 * Bytes that do not start with the magic are not a header: the peer does
 * not speak the exchange, and they belong to the application.
 */

/** The ALPN both sides offer (the client) and accept (the server) to say they exchange metadata. */
export const PEER_EXCHANGE_PROTOCOL = 'istio-peer-exchange';
/** The header's magic number (`MetadataExchangeInitialHeader::magic_number`). */
export const EXCHANGE_MAGIC = 0x3d230467;
export const EXCHANGE_HEADER_BYTES = 8;
/**
 * The largest metadata accepted. Envoy buffers whatever length a peer
 * announces; a proxy written in a garbage-collected language bounds it (a
 * workload's metadata is a few hundred bytes).
 */
export const MAX_EXCHANGE_PAYLOAD_BYTES = 64 * 1024;

const ANY = 'google.protobuf.Any';
const STRUCT_TYPE_URL = 'type.googleapis.com/google.protobuf.Struct';

/** A Struct's JSON with its keys sorted at every level, as Istio serializes deterministically. */
function sortedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedKeys);
  if (value === null || typeof value !== 'object') return value;
  const obj = value as Record<string, unknown>;
  return Object.fromEntries(
    Object.keys(obj)
      .sort()
      .map((k) => [k, sortedKeys(obj[k])]),
  );
}

/** This proxy's header: magic, length, then the Any holding its metadata and node id. */
export function encodeExchangeHeader(node: XdsNode): Buffer {
  const struct = {
    [PEER_METADATA_HEADER]: peerMetadataStruct(node),
    ...(node.id ? { [PEER_ID_HEADER]: node.id } : {}),
  };
  const payload = encodeMessage(ANY, { '@type': STRUCT_TYPE_URL, value: sortedKeys(struct) });
  const header = Buffer.alloc(EXCHANGE_HEADER_BYTES);
  header.writeUInt32BE(EXCHANGE_MAGIC, 0);
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

/**
 * The peer a header's payload names, or why it names none: not an Any of a
 * Struct, or a Struct without `x-envoy-peer-metadata`.
 */
export function decodeExchangePayload(
  payload: Uint8Array,
): { peer: PeerMetadata } | { problem: string; notAny?: true } {
  let any: Record<string, unknown>;
  try {
    any = decodeMessage(ANY, payload) as Record<string, unknown>;
  } catch (err) {
    return { problem: `the metadata is not a protobuf Any: ${(err as Error).message}`, notAny: true };
  }
  if (any['@type'] !== STRUCT_TYPE_URL)
    return { problem: `the metadata is a ${String(any['@type'] || 'typeless Any')}, not a Struct` };
  const struct = (any.value ?? {}) as Record<string, unknown>;
  const md = struct[PEER_METADATA_HEADER];
  if (!md || typeof md !== 'object' || Array.isArray(md))
    return { problem: `the metadata has no ${PEER_METADATA_HEADER}` };
  const id = struct[PEER_ID_HEADER];
  return { peer: peerFromStruct(md as Record<string, unknown>, typeof id === 'string' ? id : '') };
}

/** Where reading a peer's header stands. */
export type ExchangeRead =
  | { readonly state: 'need-more' }
  /** The peer's header was read: who it is (when its payload names someone), and the bytes after it. */
  | {
      readonly state: 'exchanged';
      readonly peer?: PeerMetadata;
      readonly problem?: string;
      readonly rest: Buffer;
    }
  /** No header (the peer does not speak the exchange): every byte read belongs to the application. */
  | { readonly state: 'absent'; readonly problem: string; readonly rest: Buffer };

/**
 * Reads a peer's header from a connection's first bytes, however they are
 * split into chunks. As Envoy's filter does: without the magic nothing is
 * consumed; with it the 8-byte header is, and its payload too once it parses
 * as an Any (a payload that does not is left to the application).
 */
export class ExchangeHeaderReader {
  private buffered: Buffer = Buffer.alloc(0);
  private payloadLength?: number;

  /** Adds the next bytes read; says whether the header is complete, absent, or still arriving. */
  push(chunk: Buffer): ExchangeRead {
    this.buffered = this.buffered.length ? Buffer.concat([this.buffered, chunk]) : chunk;
    if (this.payloadLength === undefined) {
      if (this.buffered.length < EXCHANGE_HEADER_BYTES) return { state: 'need-more' };
      const magic = this.buffered.readUInt32BE(0);
      if (magic !== EXCHANGE_MAGIC)
        return {
          state: 'absent',
          problem: `the peer's first bytes are not a metadata exchange header (0x${magic.toString(16).padStart(8, '0')})`,
          rest: this.buffered,
        };
      const length = this.buffered.readUInt32BE(4);
      if (length > MAX_EXCHANGE_PAYLOAD_BYTES)
        return {
          state: 'absent',
          problem: `the peer announced ${length} bytes of metadata, more than the ${MAX_EXCHANGE_PAYLOAD_BYTES} accepted`,
          rest: this.buffered.subarray(EXCHANGE_HEADER_BYTES),
        };
      this.payloadLength = length;
      this.buffered = this.buffered.subarray(EXCHANGE_HEADER_BYTES);
    }
    if (this.buffered.length < this.payloadLength) return { state: 'need-more' };
    const decoded = decodeExchangePayload(this.buffered.subarray(0, this.payloadLength));
    if ('notAny' in decoded) return { state: 'absent', problem: decoded.problem, rest: this.buffered };
    const rest = this.buffered.subarray(this.payloadLength);
    return 'peer' in decoded
      ? { state: 'exchanged', peer: decoded.peer, rest }
      : { state: 'exchanged', problem: decoded.problem, rest };
  }

  /** The connection ended before a complete header: what was read goes to the application. */
  ended(): ExchangeRead {
    return {
      state: 'absent',
      problem: 'the connection ended before the peer sent its metadata',
      rest: this.buffered,
    };
  }
}
