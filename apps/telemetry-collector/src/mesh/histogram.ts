/**
 * Prometheus's `histogram_quantile`: cumulative bucket counts (by upper bound,
 * `+Inf` last) to an estimated quantile, interpolating linearly inside the
 * bucket the rank falls in. Returns null where Prometheus returns NaN (no
 * observations, or no `+Inf` bucket).
 */
export function histogramQuantile(q: number, buckets: ReadonlyMap<string, number>): number | null {
  const sorted = [...buckets.entries()]
    .map(([le, count]) => ({ upper: le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le), count }))
    .filter((b) => !Number.isNaN(b.upper))
    .sort((a, b) => a.upper - b.upper);
  if (sorted.length < 2 || sorted[sorted.length - 1]!.upper !== Number.POSITIVE_INFINITY) return null;
  // Cumulative counts must not decrease; summed rates can wobble, as in Prometheus's ensureMonotonic.
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.count < sorted[i - 1]!.count) sorted[i]!.count = sorted[i - 1]!.count;
  }
  const observations = sorted[sorted.length - 1]!.count;
  if (!(observations > 0)) return null;
  if (q < 0) return Number.NEGATIVE_INFINITY;
  if (q > 1) return Number.POSITIVE_INFINITY;
  let rank = q * observations;
  let b = sorted.findIndex((bucket) => bucket.count >= rank);
  if (b < 0) b = sorted.length - 1;
  if (b === sorted.length - 1) return sorted[sorted.length - 2]!.upper;
  if (b === 0 && sorted[0]!.upper <= 0) return sorted[0]!.upper;
  const start = b === 0 ? 0 : sorted[b - 1]!.upper;
  const end = sorted[b]!.upper;
  let count = sorted[b]!.count;
  if (b > 0) {
    count -= sorted[b - 1]!.count;
    rank -= sorted[b - 1]!.count;
  }
  return start + (end - start) * (rank / count);
}
