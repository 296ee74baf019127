/** A book in the store. `descriptionHtml` is trusted markup written here, never user input. */
export interface Product {
  id: number;
  title: string;
  descriptionHtml: string;
}

/** The store has one book. */
export const PRODUCTS: readonly Product[] = [
  {
    id: 0,
    title: 'The Comedy of Errors',
    descriptionHtml:
      '<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>: ' +
      'an early play by <b>William Shakespeare</b>, and his shortest comedy. Two pairs of identical twins, ' +
      'parted as infants, turn up in the same town on the same day, and every mix-up that follows ' +
      'is played for slapstick, puns and wordplay.',
  },
];

/** The product the page shows. */
export const FEATURED: Product = PRODUCTS[0]!;
