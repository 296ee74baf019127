import type { HeaderMatcherJson, QueryParameterMatcherJson, StringMatcherJson } from '../envoy/types.js';
import { fail } from './errors.js';
import { compileRegex } from './regex.js';

export type Matcher = (value: string) => boolean;

/** Envoy's StringMatcher: exact, prefix, suffix, contains or full-match RE2, optionally case-insensitive. */
export function compileStringMatcher(m: StringMatcherJson, where: string): Matcher {
  const ic = m.ignore_case === true;
  const norm = (s: string) => (ic ? s.toLowerCase() : s);
  if (m.exact !== undefined) {
    const want = norm(m.exact);
    return (v) => norm(v) === want;
  }
  if (m.prefix !== undefined) {
    const want = norm(m.prefix);
    return (v) => norm(v).startsWith(want);
  }
  if (m.suffix !== undefined) {
    const want = norm(m.suffix);
    return (v) => norm(v).endsWith(want);
  }
  if (m.contains !== undefined) {
    const want = norm(m.contains);
    return (v) => norm(v).includes(want);
  }
  if (m.safe_regex) {
    const re = compileRegex(m.safe_regex.regex, `${where}.safe_regex`, ic);
    return (v) => re.fullMatch(v);
  }
  fail(where, 'string matcher sets none of exact, prefix, suffix, contains, safe_regex');
}

/** Request headers as the matchers see them: lower-case names, pseudo-headers included. */
export type HeaderLookup = (name: string) => string | undefined;

export type HeaderPredicate = (headers: HeaderLookup) => boolean;

/**
 * Envoy's HeaderMatcher (including the deprecated *_match forms), with
 * invert_match. A missing header matches nothing, inverted or not, except
 * `present_match` (Envoy's HeaderUtility::matchHeaders) — unless
 * treat_missing_header_as_empty, which matches it as the empty string.
 */
export function compileHeaderMatcher(h: HeaderMatcherJson, where: string): HeaderPredicate {
  const name = h.name.toLowerCase();
  let test: (value: string | undefined) => boolean;
  const str = (m: StringMatcherJson) => {
    const match = compileStringMatcher(m, where);
    return (v: string | undefined) => v !== undefined && match(v);
  };
  let presence = false;
  if (h.string_match) test = str(h.string_match);
  else if (h.exact_match !== undefined) test = str({ exact: h.exact_match });
  else if (h.prefix_match !== undefined) test = str({ prefix: h.prefix_match });
  else if (h.suffix_match !== undefined) test = str({ suffix: h.suffix_match });
  else if (h.contains_match !== undefined) test = str({ contains: h.contains_match });
  else if (h.safe_regex_match) test = str({ safe_regex: h.safe_regex_match });
  else {
    // present_match, or no matcher at all (the header must be present).
    presence = true;
    const want = h.present_match ?? true;
    test = (v) => (v !== undefined) === want;
  }
  const invert = h.invert_match === true;
  const missingAsEmpty = h.treat_missing_header_as_empty === true;
  return (headers) => {
    let value = headers(name);
    if (value === undefined) {
      if (missingAsEmpty) value = '';
      else if (!presence) return false;
    }
    return test(value) !== invert;
  };
}

export type QueryPredicate = (query: URLSearchParams) => boolean;

export function compileQueryMatcher(q: QueryParameterMatcherJson, where: string): QueryPredicate {
  if (q.string_match) {
    const match = compileStringMatcher(q.string_match, where);
    return (query) => {
      const v = query.get(q.name);
      return v !== null && match(v);
    };
  }
  const want = q.present_match !== false;
  return (query) => query.has(q.name) === want;
}
