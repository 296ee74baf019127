import { fail } from './errors.js';

/**
 * What a proxy does with a field it receives: honour it, or refuse the whole
 * resource (a NACK naming the field), never ignore it. Each Envoy message the
 * proxy compiles declares every field it knows (config/fields/*), and
 * `refuseUnknownFields` walks a resource against that declaration:
 *
 *     cluster outbound|9080||reviews: outlier_detection.success_rate_minimum_hosts is not supported
 *
 * The declaration says nothing about values (the compilers check those); it
 * only makes sure no field slips past them unread.
 */

/** A field the compiler reads and applies: a scalar, a list of them, or a value it checks as a whole. */
export const HONOURED = 'honoured';

/**
 * A field with no behaviour for this proxy — a name, a stat prefix, opaque
 * metadata — accepted as it is. Every use says why next to it.
 */
export const INERT = 'inert';

/** A typed config whose own compiler declares and checks its fields (and refuses types it does not run). */
export const OWN_CHECK = 'own-check';

export type FieldRule =
  | typeof HONOURED
  | typeof INERT
  | typeof OWN_CHECK
  | Fields
  | MapRule
  | ValueRule
  | TypedRule;

/** A message: each field it may carry, and what the proxy does with it. */
export interface Fields {
  readonly [field: string]: FieldRule;
}

class MapRule {
  constructor(readonly entries: FieldRule) {}
}

class ValueRule {
  constructor(readonly refusal: (value: unknown) => string | undefined) {}
}

class TypedRule {
  constructor(readonly types: Readonly<Record<string, Fields>>) {}
}

/** A map (protobuf `map<string, …>`): every entry is checked against `entries`. */
export function mapOf(entries: FieldRule): FieldRule {
  return new MapRule(entries);
}

/**
 * A field honoured for some values only: `refusal` returns why a value is not
 * (it follows the field's path: "must be 0: …"), or undefined to accept it.
 */
export function honouredWhen(refusal: (value: unknown) => string | undefined): FieldRule {
  return new ValueRule(refusal);
}

/** A field honoured only with one of these values (enum names as they arrive). */
export function honouredOnlyAs(values: readonly unknown[], why: string): FieldRule {
  return honouredWhen((v) =>
    values.includes(v) ? undefined : `${JSON.stringify(v)} is not supported: ${why}`,
  );
}

/** A google.protobuf.Any: its `@type` picks the fields; a type not listed is refused. */
export function typed(types: Readonly<Record<string, Fields>>): FieldRule {
  return new TypedRule(types);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkValue(value: unknown, rule: FieldRule, where: string, at: string): void {
  if (rule === HONOURED || rule === INERT || rule === OWN_CHECK) return;
  if (rule instanceof ValueRule) {
    const why = rule.refusal(value);
    if (why !== undefined) fail(where, `${at} ${why}`);
    return;
  }
  if (Array.isArray(value)) {
    for (const [i, v] of value.entries()) checkValue(v, rule, where, `${at}[${i}]`);
    return;
  }
  if (!isObject(value)) return;
  if (rule instanceof MapRule) {
    for (const [key, v] of Object.entries(value)) checkValue(v, rule.entries, where, `${at}[${key}]`);
    return;
  }
  if (rule instanceof TypedRule) {
    const type = String(value['@type'] ?? '');
    const fields = Object.hasOwn(rule.types, type) ? rule.types[type] : undefined;
    if (!fields) fail(where, `${at}: type ${type || '(none)'} is not supported here`);
    checkFields(value, fields, where, at);
    return;
  }
  checkFields(value, rule, where, at);
}

/** `@type` is how an Any names its message (no protobuf field can be called that), so it is never a field. */
function checkFields(message: Record<string, unknown>, fields: Fields, where: string, path: string): void {
  for (const [key, value] of Object.entries(message)) {
    if (value === undefined || value === null) continue;
    if (key === '@type') continue;
    const at = path ? `${path}.${key}` : key;
    const rule = Object.hasOwn(fields, key) ? fields[key] : undefined;
    if (rule === undefined) fail(where, `${at} is not supported`);
    checkValue(value, rule, where, at);
  }
}

/**
 * Refuses `message` (throws the ConfigError a NACK carries) when it, or any
 * message inside it, has a field `fields` does not declare. `where` names
 * the resource ("cluster outbound|9080||reviews"); `path` is where the
 * message sits in it, when it is not the resource itself.
 */
export function refuseUnknownFields(message: unknown, fields: Fields, where: string, path = ''): void {
  if (isObject(message)) checkFields(message, fields, where, path);
}
