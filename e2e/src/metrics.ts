import { type Family, parseExposition } from '@mizzen/telemetry';

/** One sample of a scraped family: its labels and value. */
export interface Series {
  labels: Record<string, string>;
  value: number;
}

/** A proxy's `/stats/prometheus` text (bounded to 5 s). */
export async function scrapeStats(statsPort: number): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${statsPort}/stats/prometheus`, {
    signal: AbortSignal.timeout(5000),
  });
  if (!res.ok) throw new Error(`/stats/prometheus on ${statsPort} answered ${res.status}`);
  return res.text();
}

/** A proxy's metric families, parsed. */
export async function scrapeFamilies(statsPort: number): Promise<Family[]> {
  return parseExposition(await scrapeStats(statsPort)).families;
}

/** Every sample of a family, by sample name (`istio_requests_total`, `..._bucket`…). */
export function samples(families: Family[], name: string): Series[] {
  return families.flatMap((f) =>
    f.samples.filter((s) => s.name === name).map((s) => ({ labels: s.labels, value: s.value })),
  );
}

/** The sum of the samples whose labels include every one in `match`. */
export function sum(series: Series[], match: Record<string, string>): number {
  return series
    .filter((s) => Object.entries(match).every(([k, v]) => s.labels[k] === v))
    .reduce((a, s) => a + s.value, 0);
}
