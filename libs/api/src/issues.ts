/** A problem found in Istio YAML: where it is (file, document, resource, field) and why. */
export interface ValidationIssue {
  severity: 'error' | 'warning';
  /** The file path, or a label such as `request`. */
  source: string;
  /** 1-based index of the YAML document in the source. */
  document: number;
  /** 0-based index in `items` when the document is a `kind: List`. */
  item?: number;
  /** 1-based line in the source the problem points at, when known. */
  line?: number;
  kind?: string;
  namespace?: string;
  name?: string;
  /**
   * The field, like `spec.http[0].route[0].weight`; `''` for a problem with
   * the whole document. Only problems inside the spec start with `spec`.
   */
  path: string;
  message: string;
  /** The document is not readable YAML or JSON at all (a syntax error), rather than an invalid resource. */
  syntax?: true;
}

export type PathSegment = string | number;

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** `['spec', 'http', 0, 'match', 0, 'headers', 'end-user']` → `spec.http[0].match[0].headers["end-user"]`. */
export function formatPath(path: readonly PathSegment[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (IDENTIFIER.test(segment)) out += out ? `.${segment}` : segment;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

/**
 * One line naming file, document, resource and field:
 * `bad-reviews.yaml: document 1 (VirtualService default/reviews): spec.http[0].route[0].weight: must be between 0 and 100, got 120 (line 11)`.
 */
export function formatIssue(i: ValidationIssue): string {
  let where = `${i.source}: document ${i.document}`;
  if (i.item !== undefined) where += ` items[${i.item}]`;
  const resource = describeResource(i);
  if (resource) where += ` (${resource})`;
  const severity = i.severity === 'warning' ? 'warning: ' : '';
  const field = i.path ? `${i.path}: ` : '';
  const line = i.line !== undefined && !i.message.includes(`line ${i.line}`) ? ` (line ${i.line})` : '';
  return `${where}: ${severity}${field}${i.message}${line}`;
}

function describeResource(i: ValidationIssue): string {
  const name = i.name ? `${i.namespace ?? 'default'}/${i.name}` : '';
  if (i.kind && name) return `${i.kind} ${name}`;
  return i.kind ?? name;
}
