import { type Document, isNode, LineCounter, parseAllDocuments } from 'yaml';
import { formatPath, type PathSegment, type ValidationIssue } from './issues.js';
import { type ConfigResource, configKey, isKind, type Kind } from './resource.js';
import { checkResource } from './validation/resource.js';

export interface ParseResult {
  /** The valid resources, in document order. */
  resources: ConfigResource[];
  /** Every problem found: errors (the resource is left out) and warnings (it is kept). */
  issues: ValidationIssue[];
  /**
   * The identity of every document that names a resource properly (known
   * kind and apiVersion, valid name and namespace), even when its spec is
   * invalid: what a delete needs.
   */
  identities: ResourceRef[];
}

/** Which resource a document names, and where. */
export interface ResourceRef {
  kind: Kind;
  namespace: string;
  name: string;
  /** `Kind/namespace/name`, as `configKey` gives it. */
  key: string;
  document: number;
  item?: number;
}

/** A resource with the document it came from, for sources that report per document. */
export interface LocatedResource {
  resource: ConfigResource;
  document: number;
  item?: number;
  /** The line the resource starts on (its document, or its item in a List). */
  line?: number;
}

/**
 * Parses Istio YAML: several documents separated by `---`, JSON, or a
 * `kind: List` with `items`. Empty documents are skipped. Every resource is
 * validated; invalid ones are left out of `resources` and their issues
 * returned. `source` names the input in issues (a file path, or `request`).
 */
export function parseConfig(text: string, source: string): ParseResult {
  const { located, issues, identities } = parseConfigLocated(text, source);
  return { resources: located.map((l) => l.resource), issues, identities };
}

/** `parseConfig`, also telling which document each resource came from. */
export function parseConfigLocated(
  text: string,
  source: string,
): {
  located: LocatedResource[];
  issues: ValidationIssue[];
  identities: ResourceRef[];
  /** Each document's value by its number less one (undefined where it is empty or unreadable): what `mizzen analyze` reads Kubernetes objects from. */
  documents: unknown[];
} {
  const lines = new LineCounter();
  const docs = parseAllDocuments(text, {
    lineCounter: lines,
    prettyErrors: false,
    uniqueKeys: true,
    strict: true,
    merge: true,
  });
  const located: LocatedResource[] = [];
  const issues: ValidationIssue[] = [];
  const identities: ResourceRef[] = [];
  const documents: unknown[] = [];
  const seen = new Map<string, number>();
  if (!Array.isArray(docs)) return { located, issues, identities, documents };

  for (const [index, doc] of docs.entries()) {
    const document = index + 1;
    const lineAt = (offset: number) => lines.linePos(offset).line;
    if (doc.errors.length) {
      // Later errors in a broken document are mostly echoes of the first one.
      const err = doc.errors[0]!;
      const pos = lines.linePos(err.pos[0]);
      issues.push({
        severity: 'error',
        source,
        document,
        line: pos.line,
        path: '',
        syntax: true,
        message: `YAML syntax error at line ${pos.line}, column ${pos.col}: ${firstLine(err.message)}`,
      });
      continue;
    }
    for (const warning of doc.warnings) {
      issues.push({
        severity: 'warning',
        source,
        document,
        line: lineAt(warning.pos[0]),
        path: '',
        message: firstLine(warning.message),
      });
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: 100 });
    } catch (err) {
      issues.push({
        severity: 'error',
        source,
        document,
        path: '',
        syntax: true,
        message: `cannot read the document: ${(err as Error).message}`,
      });
      continue;
    }
    documents[index] = value;
    if (value === null || value === undefined) continue;

    const entries: { raw: unknown; item?: number }[] = isList(value)
      ? value.items.map((raw, item) => ({ raw, item }))
      : [{ raw: value }];
    for (const { raw, item } of entries) {
      const prefix: PathSegment[] = item === undefined ? [] : ['items', item];
      const checked = checkResource(raw);
      for (const i of checked.issues) {
        issues.push({
          severity: i.severity,
          source,
          document,
          ...(item !== undefined ? { item } : {}),
          ...lineOf(doc, [...prefix, ...i.path], lines),
          ...(checked.kind !== undefined ? { kind: checked.kind } : {}),
          ...(checked.name !== undefined ? { namespace: checked.namespace, name: checked.name } : {}),
          path: formatPath(i.path),
          message: i.message,
        });
      }
      const identified = !checked.issues.some((i) => i.severity === 'error' && i.path[0] !== 'spec');
      if (
        identified &&
        isKind(checked.kind) &&
        checked.name !== undefined &&
        checked.namespace !== undefined
      ) {
        const ref = { kind: checked.kind, namespace: checked.namespace, name: checked.name };
        identities.push({
          ...ref,
          key: configKey({ kind: ref.kind, metadata: ref }),
          document,
          ...(item !== undefined ? { item } : {}),
        });
      }
      if (!checked.resource) continue;
      const key = configKey(checked.resource);
      const earlier = seen.get(key);
      if (earlier !== undefined) {
        issues.push({
          severity: 'warning',
          source,
          document,
          ...(item !== undefined ? { item } : {}),
          kind: checked.resource.kind,
          namespace: checked.resource.metadata.namespace,
          name: checked.resource.metadata.name,
          path: 'metadata.name',
          message: `also defined in document ${earlier} of ${source}`,
        });
      } else {
        seen.set(key, document);
      }
      located.push({
        resource: checked.resource,
        document,
        ...(item !== undefined ? { item } : {}),
        ...lineOf(doc, prefix, lines),
      });
    }
  }
  documents.length = docs.length;
  return { located, issues, identities, documents };
}

function isList(value: unknown): value is { items: unknown[] } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const v = value as { kind?: unknown; items?: unknown };
  return typeof v.kind === 'string' && v.kind.endsWith('List') && Array.isArray(v.items);
}

function firstLine(message: string): string {
  return message.split('\n')[0]!.trim();
}

/** The line of the deepest node on `path` that exists in the document. */
function lineOf(doc: Document, path: PathSegment[], lines: LineCounter): { line?: number } {
  for (let n = path.length; n >= 0; n--) {
    const node = n === 0 ? doc.contents : doc.getIn(path.slice(0, n), true);
    if (isNode(node) && node.range) return { line: lines.linePos(node.range[0]).line };
  }
  return {};
}
