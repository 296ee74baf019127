/** Stars per reviewer for one product. */
export type Ratings = Record<string, number>;

export const REVIEWERS: readonly string[] = ['Reviewer1', 'Reviewer2'];

/** What every product is rated until someone posts new ratings. */
export const DEFAULT_RATINGS: Readonly<Ratings> = { Reviewer1: 5, Reviewer2: 4 };

/** Ratings per product, in memory: what was posted, over the defaults. */
export class RatingsStore {
  readonly #byProduct = new Map<number, Ratings>();

  get(id: number): Ratings {
    return { ...(this.#byProduct.get(id) ?? DEFAULT_RATINGS) };
  }

  update(id: number, changes: Ratings): Ratings {
    const next = { ...this.get(id), ...changes };
    this.#byProduct.set(id, next);
    return { ...next };
  }
}

/**
 * Checks a posted body: a JSON object rating one or both reviewers with an
 * integer from 1 to 5. Returns the ratings, or the reason they are refused.
 */
export function parseRatings(body: string): { ratings: Ratings } | { error: string } {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return { error: 'please provide valid ratings JSON' };
  }
  const invalid = {
    error: `please provide ratings as integers from 1 to 5 for ${REVIEWERS.join(' and/or ')}`,
  };
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return invalid;
  const entries = Object.entries(value);
  if (entries.length === 0) return invalid;
  const ratings: Ratings = {};
  for (const [reviewer, stars] of entries) {
    if (!REVIEWERS.includes(reviewer)) return invalid;
    if (typeof stars !== 'number' || !Number.isInteger(stars) || stars < 1 || stars > 5) return invalid;
    ratings[reviewer] = stars;
  }
  return { ratings };
}
