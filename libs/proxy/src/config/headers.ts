import type { HeaderValueOptionJson } from '../envoy/types.js';
import { fail } from './errors.js';

type Action = 'append' | 'add-if-absent' | 'overwrite' | 'overwrite-if-exists';

/** Header edits at one level of the config (weighted cluster, route, virtual host, route table). */
export interface HeaderMutation {
  readonly add: readonly { name: string; value: string; action: Action }[];
  readonly remove: readonly string[];
}

export const NO_MUTATION: HeaderMutation = { add: [], remove: [] };

const ACTIONS: Record<string, Action> = {
  APPEND_IF_EXISTS_OR_ADD: 'append',
  ADD_IF_ABSENT: 'add-if-absent',
  OVERWRITE_IF_EXISTS_OR_ADD: 'overwrite',
  OVERWRITE_IF_EXISTS: 'overwrite-if-exists',
};

/** Headers a route may never touch (Envoy rejects these too). */
const PROTECTED = new Set([
  ':authority',
  ':method',
  ':path',
  ':scheme',
  'host',
  'connection',
  'transfer-encoding',
]);

export function compileHeaderMutation(
  add: HeaderValueOptionJson[] | undefined,
  remove: string[] | undefined,
  where: string,
): HeaderMutation {
  if (!add?.length && !remove?.length) return NO_MUTATION;
  const out: HeaderMutation = {
    add: (add ?? []).map((h, i) => {
      const name = h.header?.key?.toLowerCase();
      if (!name) fail(`${where}.headers_to_add[${i}]`, 'header key is empty');
      if (PROTECTED.has(name)) fail(`${where}.headers_to_add[${i}]`, `header ${name} cannot be modified`);
      // The deprecated `append` bool: true (Envoy's default) appends, false overwrites.
      const action = h.append_action ? ACTIONS[h.append_action] : h.append === false ? 'overwrite' : 'append';
      if (!action) fail(`${where}.headers_to_add[${i}]`, `unknown append_action ${h.append_action}`);
      return { name, value: h.header.value ?? '', action };
    }),
    remove: (remove ?? []).map((name, i) => {
      const lower = name.toLowerCase();
      if (PROTECTED.has(lower)) fail(`${where}.headers_to_remove[${i}]`, `header ${lower} cannot be removed`);
      return lower;
    }),
  };
  return out;
}

export type HeaderMap = Record<string, string | string[] | undefined>;

/** Applies mutations in order (later ones win on overwrite), editing `headers` in place. */
export function applyHeaderMutations(headers: HeaderMap, mutations: readonly HeaderMutation[]): void {
  for (const m of mutations) {
    if (m === NO_MUTATION) continue;
    for (const name of m.remove) delete headers[name];
    for (const { name, value, action } of m.add) {
      const existing = headers[name];
      switch (action) {
        case 'append':
          headers[name] =
            existing === undefined ? value : [...(Array.isArray(existing) ? existing : [existing]), value];
          break;
        case 'add-if-absent':
          if (existing === undefined) headers[name] = value;
          break;
        case 'overwrite':
          headers[name] = value;
          break;
        case 'overwrite-if-exists':
          if (existing !== undefined) headers[name] = value;
          break;
      }
    }
  }
}
