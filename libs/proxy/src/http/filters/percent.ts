import { fail } from '../../config/errors.js';

/** envoy.type.v3.FractionalPercent as JSON. */
export interface FractionalPercentJson {
  numerator?: number;
  denominator?: 'HUNDRED' | 'TEN_THOUSAND' | 'MILLION';
}

const DENOMINATORS = { HUNDRED: 100, TEN_THOUSAND: 10_000, MILLION: 1_000_000 } as const;

/** A FractionalPercent as a probability in [0, 1]; an absent one is 0 (Envoy's proto default). */
export function fraction(p: FractionalPercentJson | undefined, where: string): number {
  if (!p) return 0;
  const denominator = DENOMINATORS[p.denominator ?? 'HUNDRED'];
  if (!denominator) fail(where, `unknown denominator ${p.denominator}`);
  return Math.min(1, (p.numerator ?? 0) / denominator);
}

/** True with probability `p`. */
export function sample(p: number): boolean {
  return p >= 1 || (p > 0 && Math.random() < p);
}
