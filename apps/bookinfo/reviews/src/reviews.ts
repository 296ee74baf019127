import type { ReviewsVersion } from './config.js';

export type StarColor = 'black' | 'red';

export type Rating = { stars: number; color: StarColor } | { error: string };

export interface Review {
  reviewer: string;
  text: string;
  rating?: Rating;
}

export interface ReviewsAnswer {
  id: string;
  podname: string;
  clustername: string;
  version: ReviewsVersion;
  reviews: Review[];
}

/** The two reviews every product has. */
export const REVIEWS: readonly Pick<Review, 'reviewer' | 'text'>[] = [
  {
    reviewer: 'Reviewer1',
    text: 'An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!',
  },
  {
    reviewer: 'Reviewer2',
    text: 'Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare.',
  },
];

export const RATINGS_UNAVAILABLE = 'Ratings service is currently unavailable';

/** The colour a version draws stars in, or undefined for v1, which shows no ratings and never calls ratings. */
export function starColor(version: ReviewsVersion): StarColor | undefined {
  switch (version) {
    case 'v1':
      return undefined;
    case 'v2':
      return 'black';
    case 'v3':
      return 'red';
  }
}

export interface AnswerContext {
  id: number;
  version: ReviewsVersion;
  podName: string;
  clusterName: string;
}

/**
 * The answer for one product. `stars` is what ratings said per reviewer, or
 * undefined when ratings could not be asked; a reviewer without stars gets
 * the "unavailable" rating. Versions without a colour carry no ratings.
 */
export function reviewsAnswer(ctx: AnswerContext, stars?: Readonly<Record<string, number>>): ReviewsAnswer {
  const color = starColor(ctx.version);
  return {
    id: String(ctx.id),
    podname: ctx.podName,
    clustername: ctx.clusterName,
    version: ctx.version,
    reviews: REVIEWS.map((r) => {
      if (!color) return { ...r };
      const s = stars?.[r.reviewer];
      return { ...r, rating: s === undefined ? { error: RATINGS_UNAVAILABLE } : { stars: s, color } };
    }),
  };
}
