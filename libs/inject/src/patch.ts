import type { PodLike } from './inject.js';

/** One RFC 6902 operation, as an AdmissionResponse's JSONPatch carries it. */
export interface PatchOperation {
  op: 'add' | 'replace' | 'remove';
  path: string;
  value?: unknown;
}

function escapePointer(segment: string): string {
  return segment.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** The fields injection changes, as JSON pointer paths to objects or arrays. */
const FIELDS: readonly (readonly string[])[] = [
  ['metadata', 'labels'],
  ['metadata', 'annotations'],
  ['spec', 'initContainers'],
  ['spec', 'containers'],
  ['spec', 'volumes'],
];

function at(obj: unknown, path: readonly string[]): unknown {
  let v = obj;
  for (const p of path) v = (v as Record<string, unknown> | undefined)?.[p];
  return v;
}

/**
 * The JSONPatch turning `original` into `injected`: each changed map (labels,
 * annotations) key by key, each changed list replaced whole (containers are
 * rewritten in place by probe rewriting, so a whole-list replace is what keeps
 * the result exact). Parents that do not exist are added first.
 */
export function injectionPatch(original: PodLike, injected: PodLike): PatchOperation[] {
  const ops: PatchOperation[] = [];
  if (original.metadata === undefined && injected.metadata !== undefined) {
    ops.push({ op: 'add', path: '/metadata', value: {} });
  }
  for (const path of FIELDS) {
    const before = at(original, path);
    const after = at(injected, path);
    if (JSON.stringify(before) === JSON.stringify(after) || after === undefined) continue;
    const pointer = `/${path.map(escapePointer).join('/')}`;
    if (Array.isArray(after) || before === undefined || before === null) {
      ops.push({ op: before === undefined ? 'add' : 'replace', path: pointer, value: after });
      continue;
    }
    const b = before as Record<string, unknown>;
    const a = after as Record<string, unknown>;
    for (const [k, v] of Object.entries(a)) {
      if (JSON.stringify(b[k]) === JSON.stringify(v)) continue;
      ops.push({ op: k in b ? 'replace' : 'add', path: `${pointer}/${escapePointer(k)}`, value: v });
    }
    for (const k of Object.keys(b))
      if (!(k in a)) ops.push({ op: 'remove', path: `${pointer}/${escapePointer(k)}` });
  }
  return ops;
}

/** Applies a patch made by `injectionPatch` (tests and kube-inject check round trips with it). */
export function applyPatch<T>(doc: T, ops: readonly PatchOperation[]): T {
  const out = structuredClone(doc) as unknown as Record<string, unknown>;
  for (const op of ops) {
    const parts = op.path
      .split('/')
      .slice(1)
      .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = parts.pop()!;
    let parent = out as Record<string, unknown>;
    for (const p of parts) {
      const next = parent[p];
      if (next === undefined || next === null) throw new Error(`patch path ${op.path}: ${p} does not exist`);
      parent = next as Record<string, unknown>;
    }
    if (op.op === 'remove') delete parent[last];
    else parent[last] = structuredClone(op.value);
  }
  return out as unknown as T;
}
