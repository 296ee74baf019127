import { RE2 } from 're2-wasm';

/** Envoy compiles every regex with RE2; Istio caps their length at 1024. */
const MAX_LENGTH = 1024;
const SYNTAX = 'Envoy uses RE2 syntax: https://github.com/google/re2/wiki/Syntax';

/** Compiled patterns are remembered (bounded), since configs repeat the same few regexes. */
const results = new Map<string, string | null>();
const MAX_CACHED = 1000;

/** The reason `pattern` is not a valid RE2 regex, or undefined when it compiles. */
export function regexError(pattern: string): string | undefined {
  if (pattern === '') return 'regex must not be empty';
  if (pattern.length > MAX_LENGTH)
    return `regex is too long (${pattern.length} characters; at most ${MAX_LENGTH})`;
  let result = results.get(pattern);
  if (result === undefined) {
    result = compile(pattern);
    if (results.size >= MAX_CACHED) results.delete(results.keys().next().value!);
    results.set(pattern, result);
  }
  return result ?? undefined;
}

function compile(pattern: string): string | null {
  try {
    const re = new RE2(pattern, 'u');
    // The compiled program lives in the WebAssembly heap; free it now rather than leak it.
    (re as unknown as { wrapper?: { delete?: () => void } }).wrapper?.delete?.();
    return null;
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    // "Invalid regular expression: /<pattern>/u: <reason>"
    const at = text.lastIndexOf('/u: ');
    // re2-wasm escapes "/" in the pattern it quotes back; show the pattern as written.
    const reason = (at >= 0 ? text.slice(at + '/u: '.length) : text).replace(/\\\//g, '/');
    return `invalid regular expression "${pattern}": ${reason} (${SYNTAX})`;
  }
}
