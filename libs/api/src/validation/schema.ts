import { z } from 'zod';
import { parseDuration } from '../duration.js';
import { headerName, labelKey, labelValue } from './names.js';
import { regexError } from './regex.js';

/**
 * Shared zod building blocks for the Istio schemas. Objects are strict
 * (unknown fields are errors, as Kubernetes' structural schemas make them);
 * field-local rules (ranges, formats, regexes) are refinements here, so their
 * messages carry the exact field path. Cross-field rules live in each kind's
 * semantic checks.
 */

type Rule<T> = (value: T) => string | undefined;

/** Adds rules to a schema; the first one that fails reports its reason as the field's issue. */
export function rules<S extends z.ZodType>(schema: S, ...checks: Rule<z.output<S>>[]): S {
  return schema.superRefine((value, ctx) => {
    for (const check of checks) {
      const message = check(value);
      if (message) {
        ctx.addIssue({ code: 'custom', message });
        return;
      }
    }
  });
}

export const obj = z.strictObject;
export const str = () => z.string();
export const bool = () => z.boolean();
export const strings = () => z.array(z.string());
export const stringMap = () => z.record(z.string(), z.string());

function integer(value: number): string | undefined {
  return Number.isInteger(value) ? undefined : `must be a whole number, got ${value}`;
}

/**
 * What JSON Schema (and so the generated CRDs) can say about a number the
 * rules below check: its type and bounds. Only metadata — validation and its
 * messages stay with the rules.
 */
function numberMeta(type: 'integer' | 'number', min?: number, max?: number) {
  return {
    type,
    ...(min !== undefined ? { minimum: min } : {}),
    ...(max !== undefined ? { maximum: max } : {}),
  };
}

/** An integer within [min, max] (either bound optional). */
export function int(min?: number, max?: number) {
  return rules(z.number(), integer, (v) => {
    if (min !== undefined && max !== undefined && (v < min || v > max))
      return `must be between ${min} and ${max}, got ${v}`;
    if (min !== undefined && v < min)
      return min === 0 ? `must not be negative, got ${v}` : `must be at least ${min}, got ${v}`;
    if (max !== undefined && v > max) return `must be at most ${max}, got ${v}`;
    return undefined;
  }).meta(numberMeta('integer', min, max));
}

/** A number (fractions allowed) within [min, max] (either bound optional). */
export function num(min?: number, max?: number) {
  return rules(z.number(), (v) => {
    if (min !== undefined && max !== undefined && (v < min || v > max))
      return `must be between ${min} and ${max}, got ${v}`;
    if (min !== undefined && v < min) return `must be at least ${min}, got ${v}`;
    if (max !== undefined && v > max) return `must be at most ${max}, got ${v}`;
    return undefined;
  }).meta(numberMeta('number', min, max));
}

/** A non-negative integer (protobuf uint32 / counts). */
export const uint = () => int(0, 4_294_967_295);

/** A port number, 1-65535. */
export function port() {
  return rules(z.number(), integer, (v) =>
    v < 1 || v > 65535 ? `must be a port number between 1 and 65535, got ${v}` : undefined,
  ).meta(numberMeta('integer', 1, 65535));
}

/** A port number where 0 is allowed (for listeners bound to a unix socket); the semantic checks decide. */
export const portOrZero = () => int(0, 65535);

/** Route weights and integer percentages: 0-100. */
export const percentInt = () => int(0, 100);

/** Istio's `Percent` message: a double in [0, 100] (0, or at least 0.0001). */
export const percent = () =>
  obj({
    value: rules(z.number(), (v) => {
      if (v < 0 || v > 100) return `must be between 0 and 100, got ${v}`;
      if (v > 0 && v < 0.0001) return `must be 0 or at least 0.0001, got ${v}`;
      return undefined;
    })
      .meta(numberMeta('number', 0, 100))
      .optional(),
  });

/**
 * A duration string (`1.5s`, `100ms`, `1h30m`). Istio requires at least 1ms
 * and millisecond precision; `allowZero` accepts `0s` where Istio documents
 * zero as "disabled".
 */
export function duration(opts: { allowZero?: boolean; secondsPrecision?: boolean } = {}) {
  return rules(z.string(), (s) => {
    let ms: number;
    try {
      ms = parseDuration(s);
    } catch (err) {
      return (err as Error).message;
    }
    if (ms === 0 && opts.allowZero) return undefined;
    if (ms < 1) return `must be at least 1ms, got "${s}"`;
    if (!Number.isInteger(ms)) return `only millisecond precision is supported, got "${s}"`;
    if (opts.secondsPrecision && ms % 1000 !== 0) return `only whole seconds are supported, got "${s}"`;
    return undefined;
  });
}

/** A regex Envoy will compile with RE2. */
export const regex = () => rules(z.string(), regexError);

/** Istio's StringMatch: at most one of exact, prefix, regex (none means "present" in header matches). */
export const stringMatch = () =>
  rules(obj({ exact: str().optional(), prefix: str().optional(), regex: regex().optional() }), (m) => {
    const set = (['exact', 'prefix', 'regex'] as const).filter((k) => m[k] !== undefined);
    return set.length > 1
      ? `only one of exact, prefix or regex may be set, found ${set.join(' and ')}`
      : undefined;
  });

/** Reports a problem with one key of a map at that key's path. */
function keyRule<V>(check: (key: string, value: V) => string | undefined) {
  return (map: Record<string, V>, ctx: z.RefinementCtx<Record<string, V>>) => {
    for (const [key, value] of Object.entries(map)) {
      const message = check(key, value);
      if (message) ctx.addIssue({ code: 'custom', message, path: [key] });
    }
  };
}

/** Kubernetes labels (or a label selector's `matchLabels`): valid keys and values. */
export const labels = () => stringMap().superRefine(keyRule<string>((k, v) => labelKey(k) ?? labelValue(v)));

/** Kubernetes annotations: keys are qualified names like label keys, values are free text. */
export const annotations = () =>
  stringMap().superRefine(keyRule<string>((k) => labelKey(k)?.replace('label key', 'annotation key')));

/** A map of header name → StringMatch. */
export const headerMatches = () =>
  z.record(z.string(), stringMatch()).superRefine(keyRule((k) => headerName(k)));

/** A map of query parameter name → StringMatch. */
export const queryMatches = () =>
  z
    .record(z.string(), stringMatch())
    .superRefine(keyRule((k) => (k === '' ? 'query parameter name must not be empty' : undefined)));
