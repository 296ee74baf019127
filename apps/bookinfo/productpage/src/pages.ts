import { html, raw, type SafeHtml } from './html.js';
import type { Product } from './product.js';
import { USERNAME_RULE } from './session.js';
import type { DetailRow, RatingView, ReviewsView, ReviewView } from './views.js';

export const TITLE = 'Simple Bookstore App';

/** Colours reviews may ask for; each has its own class in the stylesheet. */
const STAR_CLASSES: Record<string, string> = { black: 'stars-black', red: 'stars-red' };

function layout(user: string | undefined, main: SafeHtml): string {
  const session =
    user === undefined
      ? html`<form class="login" method="post" action="/login">
          <label for="username">User name</label>
          <input id="username" name="username" required maxlength="64" autocomplete="username" placeholder="e.g. jason">
          <button type="submit">Sign in</button>
        </form>`
      : html`<span class="user">signed in as ${user}</span>
        <a class="button" href="/logout">Sign out</a>`;
  return html`<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>${TITLE}</title>
  <link rel="stylesheet" href="/static/bookinfo.css">
</head>
<body>
  <header class="topbar">
    <a class="brand" href="/productpage">BookInfo Sample</a>
    <div class="session">${session}</div>
  </header>
  ${main}
</body>
</html>
`.value;
}

function starsHtml(rating: RatingView): SafeHtml {
  if ('error' in rating) return html`<p class="rating-error">${rating.error}</p>`;
  const colour = STAR_CLASSES[rating.color];
  const filled = '\u2605'.repeat(rating.stars);
  const empty = '\u2606'.repeat(5 - rating.stars);
  return html`<span class="stars${colour ? raw(` ${colour}`) : ''}" role="img" aria-label="${rating.stars} out of 5 stars">${filled}${empty}</span>`;
}

function detailsHtml(details: DetailRow[] | string): SafeHtml {
  if (typeof details === 'string') return html`<p class="unavailable">${details}</p>`;
  return html`<table class="details-table">
        <tbody>
          ${details.map((row) => html`<tr><th scope="row">${row.label}</th><td>${row.value}</td></tr>`)}
        </tbody>
      </table>`;
}

function reviewHtml(review: ReviewView): SafeHtml {
  return html`<blockquote class="review">
        <p>${review.text}</p>
        <footer class="reviewer">${review.reviewer}</footer>${review.rating && starsHtml(review.rating)}
      </blockquote>`;
}

function servedByHtml(podname: string, clustername: string | undefined): SafeHtml {
  const cluster = clustername && clustername !== 'null' ? clustername : undefined;
  return html`<p class="served-by">Reviews served by: <span class="podname">${podname}</span>${
    cluster && html` in cluster <span class="clustername">${cluster}</span>`
  }</p>`;
}

function reviewsHtml(reviews: ReviewsView | string): SafeHtml {
  if (typeof reviews === 'string') return html`<p class="unavailable">${reviews}</p>`;
  return html`${reviews.reviews.map(reviewHtml)}
        ${reviews.podname && servedByHtml(reviews.podname, reviews.clustername)}`;
}

export interface ProductPageView {
  product: Product;
  user?: string;
  /** The rows to show, or the sentence saying details are unavailable. */
  details: DetailRow[] | string;
  /** The reviews to show, or the sentence saying reviews are unavailable. */
  reviews: ReviewsView | string;
}

export function renderProductPage(view: ProductPageView): string {
  return layout(
    view.user,
    html`<main class="product">
    <section class="summary">
      <h1>${view.product.title}</h1>
      <p>${raw(view.product.descriptionHtml)}</p>
    </section>
    <div class="columns">
      <section class="details">
        <h2>Book Details</h2>
        ${detailsHtml(view.details)}
      </section>
      <section class="reviews">
        <h2>Book Reviews</h2>
        ${reviewsHtml(view.reviews)}
      </section>
    </div>
  </main>`,
  );
}

export function renderIndex(user: string | undefined): string {
  return layout(
    user,
    html`<main class="index">
    <h1>${TITLE}</h1>
    <p>Hello! This is a small bookstore made of four services: productpage (this site) shows a book
      with its details from <em>details</em> and its reviews from <em>reviews</em>, whose versions v2 and v3
      ask <em>ratings</em> for stars.</p>
    <ul>
      <li><a href="/productpage">The product page</a></li>
      <li><a href="/api/v1/products">The products API</a></li>
    </ul>
  </main>`,
  );
}

export function renderLoginRefused(): string {
  return layout(
    undefined,
    html`<main class="message">
    <h1>Cannot sign in</h1>
    <p>Please enter ${USERNAME_RULE}.</p>
    <p><a href="/productpage">Back to the book</a></p>
  </main>`,
  );
}
