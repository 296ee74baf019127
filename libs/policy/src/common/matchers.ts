import type {
  HeaderMatcherJson,
  MetadataMatcherJson,
  PathMatcherJson,
  StringMatcherJson,
  ValueMatcherJson,
} from '../envoy/types.js';
import { fail } from './errors.js';
import { compileFullMatch } from './regex.js';

/**
 * Envoy's generic matchers (StringMatcher, HeaderMatcher, PathMatcher,
 * MetadataMatcher/ValueMatcher, uri_template), compiled once into closures.
 */

export type StringPredicate = (value: string) => boolean;

/** Lower-case header name → every value joined with `,` (Envoy's getAllOfHeaderAsString), or undefined. */
export type HeaderLookup = (name: string) => string | undefined;

/** Dynamic metadata: filter namespace → a Struct (plain JSON object). */
export type DynamicMetadata = Readonly<Record<string, Readonly<Record<string, unknown>>>>;

/** StringMatcher: exact, prefix, suffix, contains (optionally ignore_case) or a full-match RE2 regex. */
export function compileStringMatcher(m: StringMatcherJson, where: string): StringPredicate {
  const ic = m.ignore_case === true;
  const norm = ic ? (s: string) => s.toLowerCase() : (s: string) => s;
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
  // ignore_case has no effect on safe_regex in Envoy.
  if (m.safe_regex) return compileFullMatch(m.safe_regex.regex, `${where}.safe_regex`);
  fail(where, 'string matcher sets none of exact, prefix, suffix, contains, safe_regex');
}

export type HeaderPredicate = (headers: HeaderLookup) => boolean;

/** HeaderMatcher, including the deprecated `*_match` forms, range_match, present_match and invert_match. */
export function compileHeaderMatcher(h: HeaderMatcherJson, where: string): HeaderPredicate {
  if (!h.name) fail(where, 'header matcher has no name');
  const name = h.name.toLowerCase();
  const invert = h.invert_match === true;
  if (h.present_match !== undefined) {
    const want = h.present_match;
    return (headers) => ((headers(name) !== undefined) === want) !== invert;
  }
  let test: StringPredicate;
  if (h.string_match) test = compileStringMatcher(h.string_match, `${where}.string_match`);
  else if (h.exact_match !== undefined) test = compileStringMatcher({ exact: h.exact_match }, where);
  else if (h.prefix_match !== undefined) test = compileStringMatcher({ prefix: h.prefix_match }, where);
  else if (h.suffix_match !== undefined) test = compileStringMatcher({ suffix: h.suffix_match }, where);
  else if (h.contains_match !== undefined) test = compileStringMatcher({ contains: h.contains_match }, where);
  else if (h.safe_regex_match) test = compileFullMatch(h.safe_regex_match.regex, `${where}.safe_regex_match`);
  else if (h.range_match) {
    const { start, end } = h.range_match;
    test = (v) => /^-?\d+$/.test(v) && Number(v) >= start && Number(v) < end;
  } else {
    // No specifier: Envoy treats it as a presence match.
    return (headers) => (headers(name) !== undefined) !== invert;
  }
  const missingAsEmpty = h.treat_missing_header_as_empty === true;
  return (headers) => {
    const value = headers(name);
    if (value === undefined && !missingAsEmpty) return invert;
    return test(value ?? '') !== invert;
  };
}

/** The path without its query string and fragment (what Envoy's url_path and uri_template see). */
export function pathWithoutQuery(path: string): string {
  const q = path.search(/[?#]/);
  return q < 0 ? path : path.slice(0, q);
}

export type PathPredicate = (path: string | undefined) => boolean;

/** PathMatcher: a StringMatcher on the path without query; no path (not HTTP) never matches. */
export function compilePathMatcher(m: PathMatcherJson, where: string): PathPredicate {
  if (!m.path) fail(where, 'path matcher has no path');
  const test = compileStringMatcher(m.path, `${where}.path`);
  return (path) => path !== undefined && test(pathWithoutQuery(path));
}

// Envoy's uri_template character classes (RFC 3986 pchar without `/`, and with it for `**`).
const SEGMENT_CHARS = "[a-zA-Z0-9\\-._~%!$&'()+,;:@=]";
const ONE_SEGMENT = `${SEGMENT_CHARS}+`;
const ANY_SEGMENTS = "[a-zA-Z0-9\\-._~%!$&'()+,;:@=/]*";

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Envoy's uri_template path matcher (`envoy.path.match.uri_template`):
 * `*` one path segment, `**` zero or more segments (last operator only),
 * `{name}` / `{name=*}` / `{name=**}` / `{name=literal/*}` variables.
 */
export function compileUriTemplate(template: string, where: string): PathPredicate {
  if (!template.startsWith('/')) fail(where, `path_template ${JSON.stringify(template)} must start with "/"`);
  let regex = '';
  let sawTextGlob = false;
  const operator = (op: string) => {
    if (sawTextGlob) fail(where, `in ${JSON.stringify(template)}, "**" must be the last operator`);
    if (op === '**') {
      sawTextGlob = true;
      return ANY_SEGMENTS;
    }
    return ONE_SEGMENT;
  };
  for (let i = 0; i < template.length; ) {
    const c = template[i]!;
    if (c === '{') {
      const close = template.indexOf('}', i);
      if (close < 0) fail(where, `unterminated variable in ${JSON.stringify(template)}`);
      const body = template.slice(i + 1, close);
      const eq = body.indexOf('=');
      const name = eq < 0 ? body : body.slice(0, eq);
      if (!/^[a-zA-Z][a-zA-Z0-9_]*$/.test(name)) {
        fail(where, `invalid variable name ${JSON.stringify(name)} in ${JSON.stringify(template)}`);
      }
      const pattern = eq < 0 ? '*' : body.slice(eq + 1);
      let inner = '';
      for (const part of pattern.split('/')) {
        if (inner) inner += '/';
        if (part === '*' || part === '**') inner += operator(part);
        else if (/^[a-zA-Z0-9\-._~%!$&'()+,;:@=]+$/.test(part)) inner += escapeRegex(part);
        else
          fail(where, `invalid variable pattern ${JSON.stringify(pattern)} in ${JSON.stringify(template)}`);
      }
      regex += `(${inner})`;
      i = close + 1;
    } else if (c === '*') {
      const op = template[i + 1] === '*' ? '**' : '*';
      regex += operator(op);
      i += op.length;
    } else {
      regex += escapeRegex(c);
      i++;
    }
  }
  const re = new RegExp(`^${regex}$`);
  return (path) => path !== undefined && re.test(pathWithoutQuery(path));
}

export type ValuePredicate = (value: unknown) => boolean;

/** ValueMatcher over a metadata value (`undefined` = not set, Envoy's KIND_NOT_SET). */
export function compileValueMatcher(m: ValueMatcherJson, where: string): ValuePredicate {
  if (m.null_match !== undefined) return (v) => v === null;
  if (m.double_match !== undefined) {
    const d = m.double_match;
    if (d.exact !== undefined) {
      const want = d.exact;
      return (v) => typeof v === 'number' && v === want;
    }
    if (d.range) {
      const { start, end } = d.range;
      return (v) => typeof v === 'number' && v >= start && v < end;
    }
    fail(`${where}.double_match`, 'sets neither range nor exact');
  }
  if (m.string_match !== undefined) {
    const test = compileStringMatcher(m.string_match, `${where}.string_match`);
    return (v) => typeof v === 'string' && test(v);
  }
  if (m.bool_match !== undefined) {
    const want = m.bool_match;
    return (v) => typeof v === 'boolean' && v === want;
  }
  if (m.present_match !== undefined) {
    const want = m.present_match;
    return (v) => want && v !== undefined;
  }
  if (m.list_match !== undefined) {
    if (!m.list_match.one_of) fail(`${where}.list_match`, 'needs one_of');
    const inner = compileValueMatcher(m.list_match.one_of, `${where}.list_match.one_of`);
    return (v) => Array.isArray(v) && v.some((x) => inner(x));
  }
  if (m.or_match !== undefined) {
    const all = (m.or_match.value_matchers ?? []).map((x, i) =>
      compileValueMatcher(x, `${where}.or_match.value_matchers[${i}]`),
    );
    if (all.length < 2) fail(`${where}.or_match`, 'needs at least two value_matchers');
    return (v) => all.some((p) => p(v));
  }
  fail(where, 'value matcher sets no match pattern');
}

/** Walks a Struct by keys; undefined as soon as a step is missing or not a struct. */
export function metadataValue(metadata: DynamicMetadata, filter: string, path: readonly string[]): unknown {
  let cur: unknown = metadata[filter];
  if (cur === undefined) return undefined;
  for (const key of path) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return undefined;
    if (!Object.hasOwn(cur, key)) return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return cur;
}

export type MetadataPredicate = (metadata: DynamicMetadata) => boolean;

/** MetadataMatcher: the value at filter/path, matched, XOR invert. */
export function compileMetadataMatcher(m: MetadataMatcherJson, where: string): MetadataPredicate {
  if (!m.filter) fail(where, 'metadata matcher has no filter');
  if (!m.path?.length) fail(where, 'metadata matcher needs a path');
  const keys = m.path.map((seg, i) => {
    if (typeof seg.key !== 'string') fail(`${where}.path[${i}]`, 'path segment needs a key');
    return seg.key;
  });
  if (!m.value) fail(where, 'metadata matcher has no value');
  const test = compileValueMatcher(m.value, `${where}.value`);
  const invert = m.invert === true;
  return (metadata) => test(metadataValue(metadata, m.filter, keys)) !== invert;
}
