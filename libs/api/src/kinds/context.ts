import type { z } from 'zod';
import type { Checker } from '../validation/checker.js';

/** What a kind's semantic checks know about the resource besides its spec. */
export interface SpecContext {
  namespace: string;
  name: string;
}

/**
 * One Istio kind's validation: the zod schema of its spec (structure, field
 * formats) and the semantic checks that run once the structure is sound.
 */
export interface KindValidation<T> {
  schema: z.ZodType<T>;
  /** Cross-field rules, as Istio's pkg/config/validation has them. `at` points at `spec`. */
  check(spec: T, at: Checker, ctx: SpecContext): void;
  /** Rules on metadata particular to the kind (e.g. Gateway names are DNS labels). `at` points at `metadata`. */
  checkMetadata?(meta: { name: string; namespace: string }, at: Checker): void;
}
