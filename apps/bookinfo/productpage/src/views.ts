/**
 * What the page shows, taken defensively from the JSON that details and
 * reviews answer: only the fields the page needs, with the expected types.
 */

export interface DetailRow {
  label: string;
  value: string;
}

const DETAIL_FIELDS: readonly (readonly [key: string, label: string])[] = [
  ['author', 'Author'],
  ['year', 'Year'],
  ['type', 'Type'],
  ['pages', 'Pages'],
  ['publisher', 'Publisher'],
  ['language', 'Language'],
  ['ISBN-10', 'ISBN-10'],
  ['ISBN-13', 'ISBN-13'],
];

export type RatingView = { stars: number; color: string } | { error: string };

export interface ReviewView {
  reviewer: string;
  text: string;
  rating?: RatingView;
}

export interface ReviewsView {
  reviews: ReviewView[];
  podname?: string;
  clustername?: string;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value))
    ? String(value)
    : undefined;
}

/** The rows of the details table, or undefined when the answer has none of them. */
export function detailRows(body: unknown): DetailRow[] | undefined {
  if (!isRecord(body)) return undefined;
  const rows: DetailRow[] = [];
  for (const [key, label] of DETAIL_FIELDS) {
    const value = text(body[key]);
    if (value !== undefined) rows.push({ label, value });
  }
  return rows.length > 0 ? rows : undefined;
}

function ratingView(value: unknown): RatingView | undefined {
  if (!isRecord(value)) return undefined;
  if (typeof value.error === 'string') return { error: value.error };
  if (typeof value.stars !== 'number' || !Number.isFinite(value.stars)) return undefined;
  const stars = Math.min(5, Math.max(0, Math.round(value.stars)));
  return { stars, color: typeof value.color === 'string' ? value.color : '' };
}

/** The reviews to show, or undefined when the answer is not a reviews answer. */
export function reviewsView(body: unknown): ReviewsView | undefined {
  if (!isRecord(body) || !Array.isArray(body.reviews)) return undefined;
  const reviews: ReviewView[] = [];
  for (const item of body.reviews) {
    if (!isRecord(item)) continue;
    const reviewer = text(item.reviewer);
    const said = text(item.text);
    if (reviewer === undefined || said === undefined) continue;
    const rating = ratingView(item.rating);
    reviews.push(rating ? { reviewer, text: said, rating } : { reviewer, text: said });
  }
  return {
    reviews,
    podname: text(body.podname),
    clustername: text(body.clustername),
  };
}
