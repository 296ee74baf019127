import { createHash } from 'node:crypto';
import { decodeMessage, encodeMessage, type FieldNames } from './json.js';
import { isTypeUrl, resourceName, shortType, type TypeUrl } from './type-urls.js';

/** google.protobuf.Any as it travels in a DiscoveryResponse. */
export interface AnyMessage {
  type_url: string;
  value: Uint8Array;
}

/** One xDS resource, encoded once and shared by every proxy it is sent to. */
export interface EncodedResource {
  readonly typeUrl: TypeUrl;
  readonly name: string;
  readonly any: AnyMessage;
  /** The Envoy JSON it was built from (proto field names). */
  readonly json: Record<string, unknown>;
}

export function encodeResource(typeUrl: TypeUrl, json: Record<string, unknown>): EncodedResource {
  const name = resourceName(typeUrl, json);
  let value: Uint8Array;
  try {
    value = encodeMessage(typeUrl, json);
  } catch (err) {
    throw new Error(`cannot encode ${shortType(typeUrl)} resource ${name}: ${(err as Error).message}`);
  }
  return { typeUrl, name, any: { type_url: typeUrl, value }, json };
}

export interface DecodedResource {
  typeUrl: TypeUrl;
  name: string;
  json: Record<string, unknown>;
}

/** Decodes one Any from a DiscoveryResponse into Envoy JSON. Throws with the reason if it cannot. */
export function decodeResource(any: AnyMessage, names: FieldNames = 'proto'): DecodedResource {
  if (!isTypeUrl(any.type_url)) throw new Error(`unsupported resource type ${any.type_url}`);
  const protoJson = decodeMessage(any.type_url, any.value) as Record<string, unknown>;
  const name = resourceName(any.type_url, protoJson);
  const json =
    names === 'proto'
      ? protoJson
      : (decodeMessage(any.type_url, any.value, names) as Record<string, unknown>);
  return { typeUrl: any.type_url, name, json };
}

/** A content hash over a set of resources: equal content, equal version, so unchanged config is never re-pushed. */
export function contentVersion(resources: Iterable<EncodedResource>): string {
  const hash = createHash('sha256');
  const sorted = [...resources].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const r of sorted) {
    hash.update(r.name);
    hash.update('\0');
    hash.update(r.any.value);
    hash.update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}
