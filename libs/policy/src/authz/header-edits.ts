import { parseQuery, type QueryParam } from '../common/query.js';

/**
 * What an external authorizer may change on the request it allowed (or on
 * the answer it wants sent): header edits with Envoy's append actions, header
 * removals and query parameter edits, as pure functions over plain header
 * records so the chain (for later RBAC filters) and the proxy (for the
 * request that goes upstream) apply them the same way.
 */

export type HeaderPair = readonly [name: string, value: string];

/**
 * How one header is written, after Envoy's HeaderValueOption:
 * `set` replaces every value (OVERWRITE_IF_EXISTS_OR_ADD), `append` joins the
 * value to an existing one with `,` or adds it (the deprecated `append:
 * true` on request headers), `add` adds one more value (a response header
 * with `append: true`), `add-if-absent` and `overwrite-if-exists` only when
 * the header is absent / present.
 */
export type HeaderAction = 'set' | 'append' | 'add' | 'add-if-absent' | 'overwrite-if-exists';

export interface HeaderEdit {
  /** Lower case. */
  readonly name: string;
  readonly value: string;
  readonly action: HeaderAction;
}

export type HeaderRecord = Readonly<Record<string, string | readonly string[] | undefined>>;

/** Headers an authorizer may never remove: pseudo-headers and Host (Envoy ignores such removals). */
function removable(name: string): boolean {
  return !name.startsWith(':') && name !== 'host';
}

/**
 * `headers` after `edits` (in order), then `remove`: a new record with
 * lower-case names; several values of one header become a list.
 */
export function editHeaders(
  headers: HeaderRecord,
  edits: readonly HeaderEdit[],
  remove: readonly string[] = [],
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    const key = k.toLowerCase();
    const prev = out[key];
    // Arrays are repeated headers; anything else (a number a server set) is its string.
    const values = Array.isArray(v) ? [...(v as readonly string[])] : [String(v)];
    out[key] =
      prev === undefined
        ? Array.isArray(v)
          ? values
          : values[0]!
        : [...(typeof prev === 'string' ? [prev] : prev), ...values];
  }
  for (const { name, value, action } of edits) {
    const key = name.toLowerCase();
    const prev = out[key];
    switch (action) {
      case 'set':
        out[key] = value;
        break;
      case 'append':
        out[key] =
          prev === undefined ? value : `${typeof prev === 'string' ? prev : prev.join(',')},${value}`;
        break;
      case 'add':
        out[key] = prev === undefined ? value : [...(typeof prev === 'string' ? [prev] : prev), value];
        break;
      case 'add-if-absent':
        if (prev === undefined) out[key] = value;
        break;
      case 'overwrite-if-exists':
        if (prev !== undefined) out[key] = value;
        break;
    }
  }
  for (const name of remove) {
    const key = name.toLowerCase();
    if (removable(key)) delete out[key];
  }
  return out;
}

/** `edits` written onto an empty header list (a denial the proxy sends itself), as name/value pairs in order. */
export function editedPairs(edits: readonly HeaderEdit[]): HeaderPair[] {
  const record = editHeaders({}, edits);
  return Object.entries(record).flatMap(([k, v]) =>
    (typeof v === 'string' ? [v] : v).map((value): HeaderPair => [k, value]),
  );
}

/**
 * A path (`/p?a=1&b=2`) with query parameters set (replacing every value of
 * the key, else added at the end) and removed, the rest of the query kept as
 * it was written.
 */
export function editQuery(path: string, set: readonly HeaderPair[], remove: readonly string[]): string {
  if (!set.length && !remove.length) return path;
  const q = path.indexOf('?');
  const base = q >= 0 ? path.slice(0, q) : path;
  const drop = new Set(remove);
  let params: QueryParam[] = parseQuery(q >= 0 ? path.slice(q + 1) : '').filter((p) => !drop.has(p.key));
  for (const [key, value] of set) {
    const raw = `${encodeURIComponent(key)}=${encodeURIComponent(value)}`;
    const first = params.findIndex((p) => p.key === key);
    if (first < 0) {
      params.push({ key, raw });
      continue;
    }
    // The first occurrence keeps its place (nothing before it moves); later ones go.
    params = params.filter((p, i) => p.key !== key || i === first);
    params[first] = { key, raw };
  }
  return params.length ? `${base}?${params.map((p) => p.raw).join('&')}` : base;
}
