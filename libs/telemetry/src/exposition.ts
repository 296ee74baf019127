/**
 * Prometheus text exposition format (0.0.4): reading an exposition into
 * families (what tests read values from), splitting it to merge an
 * application's metrics, and the lint exceptions Istio's own names need.
 * Checking an exposition is the real `promtool check metrics`' job
 * (promtool.ts runs it).
 */

const METRIC_NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const TYPES = new Set(['counter', 'gauge', 'histogram', 'summary', 'untyped']);

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
  line: number;
}

export interface Family {
  name: string;
  help?: string;
  type?: string;
  samples: Sample[];
}

function parseValue(v: string): number | undefined {
  if (v === 'NaN') return Number.NaN;
  if (v === '+Inf' || v === 'Inf') return Number.POSITIVE_INFINITY;
  if (v === '-Inf') return Number.NEGATIVE_INFINITY;
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(v)) return undefined;
  return Number(v);
}

/** Parses `{a="x",b="y\"z"}` starting at `i` (the `{`); returns labels and the index after `}`. */
function parseLabels(line: string, i: number): { labels: Record<string, string>; end: number } | string {
  const labels: Record<string, string> = {};
  i++;
  for (;;) {
    while (line[i] === ' ') i++;
    if (line[i] === '}') return { labels, end: i + 1 };
    const nameMatch = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(i));
    if (!nameMatch) return `invalid label name at column ${i + 1}`;
    const name = nameMatch[0];
    i += name.length;
    while (line[i] === ' ') i++;
    if (line[i] !== '=') return `expected "=" after label name ${name}`;
    i++;
    while (line[i] === ' ') i++;
    if (line[i] !== '"') return `expected a quoted value for label ${name}`;
    i++;
    let value = '';
    for (;;) {
      const c = line[i];
      if (c === undefined) return `unterminated value for label ${name}`;
      if (c === '"') break;
      if (c === '\\') {
        const n = line[i + 1];
        if (n === '\\') value += '\\';
        else if (n === '"') value += '"';
        else if (n === 'n') value += '\n';
        else return `invalid escape sequence \\${n ?? ''} in label ${name}`;
        i += 2;
        continue;
      }
      value += c;
      i++;
    }
    i++;
    if (Object.hasOwn(labels, name)) return `duplicate label name ${name}`;
    labels[name] = value;
    while (line[i] === ' ') i++;
    if (line[i] === ',') {
      i++;
      continue;
    }
    if (line[i] === '}') return { labels, end: i + 1 };
    return `expected "," or "}" after label ${name}`;
  }
}

/** The family a sample name belongs to, given the declared families (`x_bucket` → `x` for a histogram). */
function familyOf(sample: string, declared: Map<string, Family>): string {
  for (const suffix of ['_bucket', '_sum', '_count', '_total', '_created']) {
    if (!sample.endsWith(suffix)) continue;
    const base = sample.slice(0, -suffix.length);
    const f = declared.get(base);
    if (
      f &&
      (f.type === 'histogram' || f.type === 'summary' || (suffix === '_total' && f.type === 'counter'))
    )
      return base;
  }
  return sample;
}

export interface ParsedExposition {
  families: Family[];
  errors: string[];
}

/** Parses an exposition into families, collecting every parser error (with line numbers). */
export function parseExposition(text: string): ParsedExposition {
  const errors: string[] = [];
  const families: Family[] = [];
  const byName = new Map<string, Family>();
  const closed = new Set<string>();
  let current: Family | undefined;
  const enter = (name: string, lineNo: number, what: string): Family => {
    if (current?.name === name) return current;
    if (current) closed.add(current.name);
    if (closed.has(name))
      errors.push(
        `line ${lineNo}: ${what} for metric family ${name} after other families (a family must be contiguous)`,
      );
    let f = byName.get(name);
    if (!f) {
      f = { name, samples: [] };
      byName.set(name, f);
      families.push(f);
    }
    current = f;
    return f;
  };
  const lines = text.split('\n');
  if (text.length && !text.endsWith('\n')) errors.push('the exposition must end with a newline');
  lines.forEach((raw, idx) => {
    const lineNo = idx + 1;
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line);
      if (!m) return;
      const [, kind, name, rest] = m as unknown as [string, string, string, string | undefined];
      if (!METRIC_NAME.test(name)) {
        errors.push(`line ${lineNo}: invalid metric name ${name}`);
        return;
      }
      const f = enter(name, lineNo, kind);
      if (kind === 'HELP') {
        if (f.help !== undefined) errors.push(`line ${lineNo}: second HELP line for metric name ${name}`);
        f.help = rest ?? '';
        if (/\\(?![\\n])/.test(f.help))
          errors.push(`line ${lineNo}: invalid escape sequence in HELP of ${name}`);
      } else {
        const type = (rest ?? '').trim();
        if (!TYPES.has(type)) errors.push(`line ${lineNo}: unknown metric type "${type}" for ${name}`);
        if (f.type !== undefined) errors.push(`line ${lineNo}: second TYPE line for metric name ${name}`);
        else if (f.samples.length) errors.push(`line ${lineNo}: TYPE line for ${name} after its samples`);
        f.type = type;
      }
      return;
    }
    const nameMatch = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line);
    if (!nameMatch) {
      errors.push(`line ${lineNo}: invalid metric name in "${line.slice(0, 40)}"`);
      return;
    }
    const name = nameMatch[0];
    let i = name.length;
    let labels: Record<string, string> = {};
    if (line[i] === '{') {
      const parsed = parseLabels(line, i);
      if (typeof parsed === 'string') {
        errors.push(`line ${lineNo}: ${parsed}`);
        return;
      }
      labels = parsed.labels;
      i = parsed.end;
    }
    if (line[i] !== ' ' && line[i] !== '\t') {
      errors.push(`line ${lineNo}: expected a space before the value of ${name}`);
      return;
    }
    const fields = line.slice(i).trim().split(/\s+/);
    if (fields.length < 1 || fields.length > 2) {
      errors.push(`line ${lineNo}: expected a value and at most a timestamp for ${name}`);
      return;
    }
    const value = parseValue(fields[0]!);
    if (value === undefined) {
      errors.push(`line ${lineNo}: invalid value "${fields[0]}" for ${name}`);
      return;
    }
    if (fields[1] !== undefined && !/^-?\d+$/.test(fields[1]))
      errors.push(`line ${lineNo}: invalid timestamp "${fields[1]}" for ${name}`);
    const f = enter(familyOf(name, byName), lineNo, 'sample');
    f.samples.push({ name, labels, value, line: lineNo });
  });
  return { families, errors };
}

/**
 * A lint problem that a metric's fixed name causes: Istio's and Envoy's names
 * are a contract (dashboards and Kiali query them), and some break promlint's
 * naming rules in Istio's own exposition too.
 */
export interface LintException {
  /** The metric families it applies to. */
  readonly metric: RegExp;
  /** The problem's text, as `promtool check metrics` prints it after the name. */
  readonly problem: string;
  /** Why the name cannot change. */
  readonly why: string;
}

const NO_TOTAL = 'counter metrics should have "_total" suffix';

/**
 * The promlint problems that Istio's and Envoy's own names raise, and nothing
 * else: an Istio proxy and istiod fail `promtool check metrics` with exactly
 * these, because renaming would break every existing dashboard.
 */
export const ISTIO_LINT_EXCEPTIONS: readonly LintException[] = [
  {
    metric: /^istio_request_duration_milliseconds$/,
    problem: 'use base unit "seconds" instead of "milliseconds"',
    why: "Istio's standard request-duration histogram is in milliseconds",
  },
  {
    metric: /^pilot_(xds_pushes|total_xds_rejects)$/,
    problem: NO_TOTAL,
    why: "istiod's counters carry no _total suffix",
  },
  {
    metric: /^citadel_server_[a-z_]+_count$/,
    problem: NO_TOTAL,
    why: "Istio's CA counters are named *_count",
  },
  {
    metric: /^citadel_server_[a-z_]+_count$/,
    problem: 'non-histogram and non-summary metrics should not have "_count" suffix',
    why: "Istio's CA counters are named *_count",
  },
  {
    metric: /^envoy_/,
    problem: NO_TOTAL,
    why: "Envoy's stats (RBAC, jwt_authn…) are counters without _total in Envoy's Prometheus output",
  },
];

/**
 * prom-client's default Node.js metrics (`collectDefaultMetrics`): three
 * gauges named `*_total`, kept as every Node.js dashboard knows them.
 */
export const PROM_CLIENT_LINT_EXCEPTIONS: readonly LintException[] = [
  {
    metric: /(^|_)nodejs_active_(resources|handles|requests)_total$/,
    problem: 'non-counter metrics should not have "_total" suffix',
    why: "prom-client's default metrics name these gauges *_total",
  },
];

/** The text of an exposition's families, without those named in `drop` (and without an OpenMetrics `# EOF`). */
export function withoutFamilies(
  text: string,
  drop: ReadonlySet<string>,
): { text: string; dropped: string[] } {
  const lines = text.split('\n');
  const out: string[] = [];
  const dropped = new Set<string>();
  const declared = new Map<string, Family>();
  let currentName: string | undefined;
  for (const raw of lines) {
    const line = raw.replace(/\r$/, '');
    if (line === '# EOF') continue;
    const meta = /^#\s+(HELP|TYPE)\s+(\S+)(?:\s(.*))?$/.exec(line);
    if (meta) {
      currentName = meta[2]!;
      const f = declared.get(currentName) ?? { name: currentName, samples: [] };
      if (meta[1] === 'TYPE') f.type = (meta[3] ?? '').trim();
      declared.set(currentName, f);
    } else if (line && !line.startsWith('#')) {
      const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0] ?? '';
      currentName = familyOf(name, declared);
    } else if (line.startsWith('#')) {
      // Other comments belong to whatever family is current.
    }
    if (currentName && drop.has(currentName)) {
      dropped.add(currentName);
      continue;
    }
    if (line.trim() === '') continue;
    out.push(line);
  }
  return { text: out.length ? `${out.join('\n')}\n` : '', dropped: [...dropped] };
}
