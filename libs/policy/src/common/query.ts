/** One `key=value` pair of a query string: its key decoded, and the pair as it was written. */
export interface QueryParam {
  readonly key: string;
  readonly raw: string;
}

/** The pairs of a query string (what follows `?`), in order; empty pairs are dropped. */
export function parseQuery(query: string): QueryParam[] {
  return query
    .split('&')
    .filter((pair) => pair !== '')
    .map((raw) => {
      const eq = raw.indexOf('=');
      return { key: decodeKey(eq >= 0 ? raw.slice(0, eq) : raw), raw };
    });
}

/** A form-encoded key (`+` is a space); one that does not decode is kept as written. */
function decodeKey(raw: string): string {
  try {
    return decodeURIComponent(raw.replaceAll('+', ' '));
  } catch {
    return raw;
  }
}
