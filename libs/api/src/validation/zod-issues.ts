import { z } from 'zod';
import type { PathSegment } from '../issues.js';
import type { RawIssue } from './checker.js';

/**
 * Runs a zod schema over `value` and turns its issues into Istio-style
 * problems: `unknown field "rout" (did you mean "route"?)`,
 * `expected a string, got number`, `must be one of ALLOW, DENY, ...`.
 */
export function checkSchema(schema: z.ZodType, value: unknown, base: readonly PathSegment[]): RawIssue[] {
  const result = schema.safeParse(value, { reportInput: true });
  if (result.success) return [];
  const out: RawIssue[] = [];
  for (const issue of result.error.issues) {
    const path = issue.path.filter((p): p is PathSegment => typeof p !== 'symbol');
    const severity =
      (issue as { params?: { severity?: 'warning' } }).params?.severity === 'warning' ? 'warning' : 'error';
    if (issue.code === 'unrecognized_keys') {
      const known = keysAt(schema, path);
      for (const key of issue.keys) {
        const guess = closest(key, known);
        out.push({
          severity: 'error',
          path: [...base, ...path, key],
          message: `unknown field "${key}"${guess ? ` (did you mean "${guess}"?)` : ''}`,
        });
      }
      continue;
    }
    out.push({ severity, path: [...base, ...path], message: describe(issue, valueAt(value, path), path) });
  }
  return out;
}

function describe(issue: z.core.$ZodIssue, actual: unknown, path: PathSegment[]): string {
  switch (issue.code) {
    case 'invalid_type': {
      if (actual === undefined) {
        const field = path[path.length - 1];
        return typeof field === 'string' ? `required field "${field}" is missing` : 'a value is required';
      }
      return `expected ${expected(issue.expected)}, got ${typeName(actual)}`;
    }
    case 'invalid_value': {
      const values = issue.values.map(String).join(', ');
      return `must be one of ${values}, got ${JSON.stringify(actual)}`;
    }
    default:
      return issue.message;
  }
}

function expected(type: string): string {
  switch (type) {
    case 'string':
      return 'a string';
    case 'number':
      return 'a number';
    case 'boolean':
      return 'true or false';
    case 'object':
    case 'record':
      return 'a mapping';
    case 'array':
      return 'a list';
    default:
      return type;
  }
}

/** How a YAML value reads to a user: `number`, `string "abc"`, `a list`, `null`. */
export function typeName(value: unknown): string {
  if (value === null) return 'null (an empty value)';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return typeof value;
}

function valueAt(root: unknown, path: readonly PathSegment[]): unknown {
  let v = root;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string | number, unknown>)[p];
  }
  return v;
}

/** The field names the schema allows at `path` (to suggest a fix for a typo). */
function keysAt(schema: z.ZodType, path: readonly PathSegment[]): string[] {
  let s: unknown = schema;
  for (const p of [...path, null]) {
    s = unwrap(s);
    if (p === null) break;
    if (s instanceof z.ZodObject) s = s.shape[p as string];
    else if (s instanceof z.ZodArray) s = s.element;
    else if (s instanceof z.ZodRecord) s = s.valueType;
    else return [];
  }
  return s instanceof z.ZodObject ? Object.keys(s.shape) : [];
}

function unwrap(s: unknown): unknown {
  let cur = s;
  while (cur instanceof z.ZodOptional || cur instanceof z.ZodNullable || cur instanceof z.ZodDefault) {
    cur = cur.unwrap();
  }
  return cur;
}

/** The known name closest to a misspelt one, if it is close enough to be the likely intent. */
function closest(key: string, known: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const candidate of known) {
    const d = distance(key.toLowerCase(), candidate.toLowerCase());
    if (d < bestDistance) {
      bestDistance = d;
      best = candidate;
    }
  }
  const limit = Math.max(1, Math.floor(key.length / 3));
  return bestDistance <= limit ? best : undefined;
}

function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
