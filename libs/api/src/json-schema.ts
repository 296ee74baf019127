import { z } from 'zod';
import { VALIDATION } from './kinds/index.js';
import type { Kind } from './resource.js';

/**
 * The JSON Schema (draft 2020-12) of a kind's `spec`, derived from the same
 * zod schema `checkResource` validates with: fields, types, enums, required
 * fields and numeric bounds. What JSON Schema cannot say — durations, regexes
 * RE2 must compile, cross-field rules — stays with `checkResource` (and so
 * with the validating webhook). The CRD generator in tools/ turns this into
 * Kubernetes' structural schema.
 */
export function specJsonSchema(kind: Kind): Record<string, unknown> {
  return z.toJSONSchema(VALIDATION[kind].schema, { io: 'input', unrepresentable: 'throw' }) as Record<
    string,
    unknown
  >;
}
