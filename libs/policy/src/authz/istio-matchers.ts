import type {
  HeaderMatcherJson,
  MetadataMatcherJson,
  PathMatcherJson,
  StringMatcherJson,
} from '../envoy/types.js';

/**
 * The Envoy matchers Istio generates from AuthorizationPolicy values
 * (pilot/pkg/security/authz/matcher): `*` is "anything non-empty", a leading
 * `*` a suffix, a trailing `*` a prefix, anything else exact.
 */

export const SPIFFE_PREFIX = 'spiffe://';

export function regexMatcher(regex: string): StringMatcherJson {
  return { safe_regex: { regex } };
}

/** StringMatcherWithPrefix: `prefix` is prepended to the value (ignored for `*`). */
export function stringMatcherWithPrefix(value: string, prefix: string): StringMatcherJson {
  if (value === '*') return regexMatcher('.+');
  if (value.startsWith('*')) {
    // Istio splices the literal into the regex unescaped; kept as is so the generated config matches Istio's.
    return prefix === '' ? { suffix: value.slice(1) } : regexMatcher(`${prefix}.*${value.slice(1)}`);
  }
  if (value.endsWith('*')) return { prefix: `${prefix}${value.slice(0, -1)}` };
  return { exact: `${prefix}${value}` };
}

export function stringMatcher(value: string): StringMatcherJson {
  return stringMatcherWithPrefix(value, '');
}

/** A header matcher for a value: `*` is a presence match. */
export function headerMatcher(name: string, value: string): HeaderMatcherJson {
  if (value === '*') return { name, present_match: true };
  return { name, string_match: stringMatcher(value) };
}

/** The :authority matcher for `hosts`: case-insensitive; `*` is a presence match. */
export function hostMatcher(name: string, value: string): HeaderMatcherJson {
  if (value === '*') return { name, present_match: true };
  return { name, string_match: { ...stringMatcher(value), ignore_case: true } };
}

export function pathMatcher(value: string): PathMatcherJson {
  return { path: stringMatcher(value) };
}

export function metadataStringMatcher(
  filter: string,
  key: string,
  m: StringMatcherJson,
): MetadataMatcherJson {
  return { filter, path: [{ key }], value: { string_match: m } };
}

/** A list metadata matcher: the value at the path is a list with one element matching `m`. */
export function metadataListMatcher(
  filter: string,
  keys: readonly string[],
  m: StringMatcherJson,
): MetadataMatcherJson {
  return {
    filter,
    path: keys.map((key) => ({ key })),
    value: { list_match: { one_of: { string_match: m } } },
  };
}

const MATCH_ONE_TEMPLATE = '{*}';
const MATCH_ANY_TEMPLATE = '{**}';

/** Istio's security.ContainsPathTemplate. */
export function containsPathTemplate(path: string): boolean {
  return path.includes(MATCH_ONE_TEMPLATE) || path.includes(MATCH_ANY_TEMPLATE);
}

/** `{*}` → `*`, `{**}` → `**` (Envoy's uri_template syntax). */
export function sanitizePathTemplate(path: string): string {
  return path.replaceAll(MATCH_ANY_TEMPLATE, '**').replaceAll(MATCH_ONE_TEMPLATE, '*');
}
