import type { HeaderOperations, Headers } from '@mizzen/api';
import type { Json } from './envoy.js';

/** A VirtualService's `headers` (route or destination level) in Envoy's terms. */
export interface EnvoyHeaderOperations {
  requestAdd: Json[];
  requestRemove: string[];
  responseAdd: Json[];
  responseRemove: string[];
  /** `host`/`:authority` set or added: Envoy rewrites the authority instead (host_rewrite_literal). */
  authority?: string;
}

const isAuthority = (name: string) => /^(:authority|host)$/i.test(name);
/** Pseudo-headers and `host` cannot be edited as headers (Envoy refuses them). */
const isInternal = (name: string) => name.startsWith(':') || /^host$/i.test(name);

function toAdd(
  headers: Record<string, string> | undefined,
  action: 'OVERWRITE_IF_EXISTS_OR_ADD' | 'APPEND_IF_EXISTS_OR_ADD',
): { add: Json[]; authority?: string } {
  let authority: string | undefined;
  const add: Json[] = [];
  // Sorted by name, as Istio emits them, so the config does not depend on map order.
  for (const [key, value] of Object.entries(headers ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (isAuthority(key)) authority = value;
    if (isInternal(key)) continue;
    add.push({ header: { key, value }, append_action: action });
  }
  return { add, authority };
}

function sideOps(ops: HeaderOperations | undefined) {
  const set = toAdd(ops?.set, 'OVERWRITE_IF_EXISTS_OR_ADD');
  const add = toAdd(ops?.add, 'APPEND_IF_EXISTS_OR_ADD');
  return {
    add: [...set.add, ...add.add],
    remove: (ops?.remove ?? []).filter((name) => !isInternal(name)),
    // `set` wins over `add` when both name the authority.
    authority: set.authority ?? add.authority,
  };
}

/** Istio's TranslateHeadersOperations. */
export function translateHeaderOperations(headers: Headers | undefined): EnvoyHeaderOperations {
  const request = sideOps(headers?.request);
  const response = sideOps(headers?.response);
  return {
    requestAdd: request.add,
    requestRemove: request.remove,
    responseAdd: response.add,
    responseRemove: response.remove,
    ...(request.authority !== undefined ? { authority: request.authority } : {}),
  };
}

/** Appends header edits to an Envoy route or weighted cluster (after any it already has). */
export function appendHeaderOperations(target: Json, ops: EnvoyHeaderOperations): void {
  const append = (field: string, items: unknown[]) => {
    if (items.length) target[field] = [...((target[field] as unknown[] | undefined) ?? []), ...items];
  };
  append('request_headers_to_add', ops.requestAdd);
  append('request_headers_to_remove', ops.requestRemove);
  append('response_headers_to_add', ops.responseAdd);
  append('response_headers_to_remove', ops.responseRemove);
}
