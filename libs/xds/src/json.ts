import protobuf from 'protobufjs';
import { messageType, typeNameOf, typeUrlOf } from './protos.js';

/**
 * Envoy's JSON/YAML mapping of its protobuf API (what Envoy's docs show and
 * what `/config_dump` prints), converted to and from real protobuf messages by
 * reflection. Durations are strings (`1.5s`), wrappers are plain values,
 * Struct is plain JSON, Any carries `@type`. Field names are either the proto
 * names (snake_case, how pilot writes resources) or lowerCamelCase (proto3
 * JSON, how Envoy prints its config dump); both are accepted on input.
 */
export type FieldNames = 'proto' | 'json';

// biome-ignore lint/suspicious/noExplicitAny: reflective conversion walks arbitrary messages
type Loose = any;
type JsonValue = unknown;

const LONG_TYPES = new Set(['int64', 'uint64', 'sint64', 'fixed64', 'sfixed64']);
const NUMBER_TYPES = new Set([
  'double',
  'float',
  'int32',
  'uint32',
  'sint32',
  'fixed32',
  'sfixed32',
  ...LONG_TYPES,
]);
const WRAPPERS = new Set(
  ['Double', 'Float', 'Int64', 'UInt64', 'Int32', 'UInt32', 'Bool', 'String', 'Bytes'].map(
    (w) => `.google.protobuf.${w}Value`,
  ),
);

function camel(name: string): string {
  return name.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
}

function longToNumber(value: Loose): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string') return Number(value);
  if (value && typeof value.toNumber === 'function') return value.toNumber();
  return Number(value);
}

// ---------------------------------------------------------------- to JSON

/** Converts a decoded message to Envoy's JSON form. */
export function toJson(type: protobuf.Type, message: Loose, names: FieldNames = 'proto'): JsonValue {
  const special = wellKnownToJson(type, message, names);
  if (special.handled) return special.value;
  const out: Record<string, JsonValue> = {};
  for (const field of type.fieldsArray) {
    if (!Object.hasOwn(message, field.name)) continue;
    const value = message[field.name];
    if (value == null) continue;
    const key = names === 'json' ? camel(field.name) : field.name;
    if (field.map) {
      const entries = Object.entries(value as Record<string, unknown>);
      if (entries.length === 0) continue;
      out[key] = Object.fromEntries(entries.map(([k, v]) => [k, valueToJson(field, v, names)]));
    } else if (field.repeated) {
      if ((value as unknown[]).length === 0) continue;
      out[key] = (value as unknown[]).map((v) => valueToJson(field, v, names));
    } else {
      out[key] = valueToJson(field, value, names);
    }
  }
  return out;
}

function valueToJson(field: protobuf.Field, value: Loose, names: FieldNames): JsonValue {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Enum) return resolved.valuesById[value] ?? value;
  if (resolved instanceof protobuf.Type) return toJson(resolved, value, names);
  if (LONG_TYPES.has(field.type)) return longToNumber(value);
  if (field.type === 'bytes') return Buffer.from(value as Uint8Array).toString('base64');
  return value;
}

function wellKnownToJson(
  type: protobuf.Type,
  m: Loose,
  names: FieldNames,
): { handled: boolean; value?: JsonValue } {
  switch (type.fullName) {
    case '.google.protobuf.Any': {
      const url: string = m.type_url ?? '';
      let inner: protobuf.Type;
      try {
        inner = messageType(url);
      } catch {
        return {
          handled: true,
          value: { '@type': url, '@value': Buffer.from(m.value ?? []).toString('base64') },
        };
      }
      const decoded = toJson(inner, inner.decode(m.value ?? new Uint8Array()), names);
      if (isSpecialJson(inner)) return { handled: true, value: { '@type': url, value: decoded } };
      return { handled: true, value: { '@type': url, ...(decoded as object) } };
    }
    case '.google.protobuf.Duration':
      return { handled: true, value: formatDuration(longToNumber(m.seconds ?? 0), m.nanos ?? 0) };
    case '.google.protobuf.Timestamp': {
      const ms = longToNumber(m.seconds ?? 0) * 1000 + Math.floor((m.nanos ?? 0) / 1e6);
      return { handled: true, value: new Date(ms).toISOString() };
    }
    case '.google.protobuf.Struct':
      return {
        handled: true,
        value: Object.fromEntries(
          Object.entries((m.fields ?? {}) as Record<string, unknown>).map(([k, v]) => [
            k,
            structValueToJson(v),
          ]),
        ),
      };
    case '.google.protobuf.Value':
      return { handled: true, value: structValueToJson(m) };
    case '.google.protobuf.ListValue':
      return { handled: true, value: ((m.values ?? []) as unknown[]).map(structValueToJson) };
    case '.google.protobuf.Empty':
      return { handled: true, value: {} };
    case '.google.protobuf.FieldMask':
      return { handled: true, value: ((m.paths ?? []) as string[]).join(',') };
    default:
      if (WRAPPERS.has(type.fullName)) {
        const field = type.fields.value!;
        return { handled: true, value: valueToJson(field, m.value ?? field.typeDefault, names) };
      }
      return { handled: false };
  }
}

/**
 * protobufjs bundles google/protobuf/struct.proto with camelCase field names
 * (`stringValue`), unlike the snake_case Envoy protos we load; look the names up.
 */
let valueFieldNames: Record<'null' | 'number' | 'string' | 'bool' | 'struct' | 'list', string> | undefined;

function vf(): NonNullable<typeof valueFieldNames> {
  if (!valueFieldNames) {
    const fields = messageType('google.protobuf.Value').fields;
    const pick = (snake: string) => (fields[snake] ? snake : camel(snake));
    valueFieldNames = {
      null: pick('null_value'),
      number: pick('number_value'),
      string: pick('string_value'),
      bool: pick('bool_value'),
      struct: pick('struct_value'),
      list: pick('list_value'),
    };
  }
  return valueFieldNames;
}

function structValueToJson(v: Loose): JsonValue {
  if (v == null) return null;
  const n = vf();
  if (Object.hasOwn(v, n.number)) return v[n.number];
  if (Object.hasOwn(v, n.string)) return v[n.string];
  if (Object.hasOwn(v, n.bool)) return v[n.bool];
  if (Object.hasOwn(v, n.struct))
    return Object.fromEntries(
      Object.entries((v[n.struct]?.fields ?? {}) as Record<string, unknown>).map(([k, x]) => [
        k,
        structValueToJson(x),
      ]),
    );
  if (Object.hasOwn(v, n.list)) return ((v[n.list]?.values ?? []) as unknown[]).map(structValueToJson);
  return null;
}

function isSpecialJson(type: protobuf.Type): boolean {
  return (
    WRAPPERS.has(type.fullName) ||
    [
      '.google.protobuf.Duration',
      '.google.protobuf.Timestamp',
      '.google.protobuf.Struct',
      '.google.protobuf.Value',
      '.google.protobuf.ListValue',
      '.google.protobuf.FieldMask',
    ].includes(type.fullName)
  );
}

export function formatDuration(seconds: number, nanos: number): string {
  if (!nanos) return `${seconds}s`;
  const total = seconds + nanos / 1e9;
  return `${Number(total.toFixed(9))}s`;
}

// ---------------------------------------------------------------- from JSON

/** An error in a resource built for the wire, naming the field path. */
export class EnvoyJsonError extends Error {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`${path}: ${reason}`);
    this.name = 'EnvoyJsonError';
  }
}

const fieldIndex = new WeakMap<protobuf.Type, Map<string, protobuf.Field>>();

function lookupField(type: protobuf.Type, key: string): protobuf.Field | undefined {
  let index = fieldIndex.get(type);
  if (!index) {
    index = new Map();
    for (const f of type.fieldsArray) {
      index.set(f.name, f);
      index.set(camel(f.name), f);
    }
    fieldIndex.set(type, index);
  }
  return index.get(key);
}

/**
 * Converts Envoy JSON into the plain object protobufjs encodes. Unknown
 * fields, wrong scalar types and unknown enum names are errors, so a mistake
 * in a builder fails loudly instead of silently dropping config.
 */
export function fromJson(type: protobuf.Type, json: JsonValue, path = typeNameOf(type.fullName)): Loose {
  const special = wellKnownFromJson(type, json, path);
  if (special.handled) return special.value;
  if (json === null || typeof json !== 'object' || Array.isArray(json)) {
    throw new EnvoyJsonError(path, `expected an object for ${typeNameOf(type.fullName)}`);
  }
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(json as Record<string, unknown>)) {
    if (value === null || value === undefined) continue;
    const field = lookupField(type, key);
    if (!field) throw new EnvoyJsonError(`${path}.${key}`, `unknown field in ${typeNameOf(type.fullName)}`);
    const fieldPath = `${path}.${key}`;
    if (field.map) {
      if (typeof value !== 'object' || Array.isArray(value))
        throw new EnvoyJsonError(fieldPath, 'expected a map');
      out[field.name] = Object.fromEntries(
        Object.entries(value as Record<string, unknown>).map(([k, v]) => [
          k,
          valueFromJson(field, v, `${fieldPath}[${k}]`),
        ]),
      );
    } else if (field.repeated) {
      if (!Array.isArray(value)) throw new EnvoyJsonError(fieldPath, 'expected a list');
      out[field.name] = value.map((v, i) => valueFromJson(field, v, `${fieldPath}[${i}]`));
    } else {
      out[field.name] = valueFromJson(field, value, fieldPath);
    }
  }
  return out;
}

function valueFromJson(field: protobuf.Field, value: unknown, path: string): unknown {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Enum) {
    if (typeof value === 'number') return value;
    if (typeof value === 'string' && value in resolved.values) return resolved.values[value];
    throw new EnvoyJsonError(path, `unknown ${typeNameOf(resolved.fullName)} value ${JSON.stringify(value)}`);
  }
  if (resolved instanceof protobuf.Type) return fromJson(resolved, value, path);
  return scalarFromJson(field.type, value, path);
}

function scalarFromJson(kind: string, value: unknown, path: string): unknown {
  if (NUMBER_TYPES.has(kind)) {
    const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
    if (typeof n !== 'number' || Number.isNaN(n))
      throw new EnvoyJsonError(path, `expected a number (${kind})`);
    if (kind !== 'double' && kind !== 'float' && !Number.isInteger(n)) {
      throw new EnvoyJsonError(path, `expected an integer (${kind})`);
    }
    if (kind.startsWith('uint') && n < 0)
      throw new EnvoyJsonError(path, `expected a non-negative integer (${kind})`);
    return n;
  }
  if (kind === 'bool') {
    if (typeof value !== 'boolean') throw new EnvoyJsonError(path, 'expected true or false');
    return value;
  }
  if (kind === 'string') {
    if (typeof value !== 'string') throw new EnvoyJsonError(path, 'expected a string');
    return value;
  }
  if (kind === 'bytes') {
    if (value instanceof Uint8Array) return value;
    if (typeof value === 'string') return Buffer.from(value, 'base64');
    throw new EnvoyJsonError(path, 'expected base64 bytes');
  }
  throw new EnvoyJsonError(path, `unsupported scalar type ${kind}`);
}

const DURATION_RE = /^(-)?(\d+)(?:\.(\d{1,9}))?s$/;

export function parseDurationJson(value: string): { seconds: number; nanos: number } | undefined {
  const m = DURATION_RE.exec(value);
  if (!m) return undefined;
  const sign = m[1] ? -1 : 1;
  const seconds = Number(m[2]);
  const nanos = m[3] ? Number(m[3].padEnd(9, '0')) : 0;
  return { seconds: sign * seconds, nanos: sign * nanos };
}

function wellKnownFromJson(
  type: protobuf.Type,
  json: Loose,
  path: string,
): { handled: boolean; value?: unknown } {
  switch (type.fullName) {
    case '.google.protobuf.Any': {
      if (json && typeof json === 'object' && 'type_url' in json && json.value instanceof Uint8Array) {
        return { handled: true, value: { type_url: json.type_url, value: json.value } };
      }
      const url = json?.['@type'];
      if (typeof url !== 'string') throw new EnvoyJsonError(path, 'Any needs an @type');
      let inner: protobuf.Type;
      try {
        inner = messageType(url);
      } catch {
        throw new EnvoyJsonError(`${path}.@type`, `unknown type ${url}`);
      }
      const { '@type': _drop, ...rest } = json as Record<string, unknown>;
      const innerJson = isSpecialJson(inner) ? rest.value : rest;
      const bytes = inner.encode(checked(inner, fromJson(inner, innerJson, path), path)).finish();
      return { handled: true, value: { type_url: typeUrlOf(inner.fullName), value: bytes } };
    }
    case '.google.protobuf.Duration': {
      if (typeof json === 'string') {
        const d = parseDurationJson(json);
        if (!d)
          throw new EnvoyJsonError(path, `invalid duration ${JSON.stringify(json)} (expected e.g. "1.5s")`);
        return { handled: true, value: d };
      }
      if (json && typeof json === 'object' && 'seconds' in json) return { handled: false };
      throw new EnvoyJsonError(path, 'expected a duration string such as "1.5s"');
    }
    case '.google.protobuf.Timestamp': {
      if (typeof json !== 'string' || Number.isNaN(Date.parse(json))) {
        throw new EnvoyJsonError(path, 'expected an RFC 3339 timestamp');
      }
      const ms = Date.parse(json);
      return { handled: true, value: { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 } };
    }
    case '.google.protobuf.Struct':
      if (!json || typeof json !== 'object' || Array.isArray(json))
        throw new EnvoyJsonError(path, 'expected an object');
      return { handled: true, value: structFromJson(json) };
    case '.google.protobuf.Value':
      return { handled: true, value: structValueFromJson(json) };
    case '.google.protobuf.ListValue':
      if (!Array.isArray(json)) throw new EnvoyJsonError(path, 'expected a list');
      return { handled: true, value: { values: json.map(structValueFromJson) } };
    case '.google.protobuf.FieldMask':
      if (typeof json !== 'string') return { handled: false };
      return { handled: true, value: { paths: json.split(',').filter(Boolean) } };
    default:
      if (WRAPPERS.has(type.fullName)) {
        if (json && typeof json === 'object' && !Array.isArray(json) && 'value' in json)
          return { handled: false };
        return { handled: true, value: { value: valueFromJson(type.fields.value!, json, path) } };
      }
      return { handled: false };
  }
}

function structFromJson(json: Record<string, unknown>): unknown {
  return { fields: Object.fromEntries(Object.entries(json).map(([k, v]) => [k, structValueFromJson(v)])) };
}

function structValueFromJson(v: unknown): unknown {
  const n = vf();
  if (v === null || v === undefined) return { [n.null]: 0 };
  if (typeof v === 'number') return { [n.number]: v };
  if (typeof v === 'string') return { [n.string]: v };
  if (typeof v === 'boolean') return { [n.bool]: v };
  if (Array.isArray(v)) return { [n.list]: { values: v.map(structValueFromJson) } };
  return { [n.struct]: structFromJson(v as Record<string, unknown>) };
}

function checked(type: protobuf.Type, obj: Loose, path: string): Loose {
  const problem = type.verify(obj);
  if (problem) throw new EnvoyJsonError(path, problem);
  return obj;
}

// ---------------------------------------------------------------- bytes

/** Encodes an Envoy JSON object as the wire bytes of `typeName`. */
export function encodeMessage(typeName: string, json: unknown): Uint8Array {
  const type = messageType(typeName);
  const path = typeNameOf(type.fullName);
  return type.encode(checked(type, fromJson(type, json, path), path)).finish();
}

/** Decodes wire bytes of `typeName` into Envoy JSON. */
export function decodeMessage(typeName: string, bytes: Uint8Array, names: FieldNames = 'proto'): unknown {
  const type = messageType(typeName);
  return toJson(type, type.decode(bytes), names);
}
