/**
 * Prometheus text exposition format (0.0.4, and the OpenMetrics subset that
 * proxies print: `# EOF`, `_created` lines are read like any sample): what
 * `/stats/prometheus` serves. Parsing is strict about structure, as
 * Prometheus is: one malformed line fails the scrape with its line number.
 */
export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
  /** Milliseconds since the epoch, when the line carries one. */
  timestamp?: number;
}

export type MetricType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped' | 'unknown';

export interface Exposition {
  samples: Sample[];
  types: Map<string, MetricType>;
  help: Map<string, string>;
}

export class ExpositionError extends Error {
  override readonly name = 'ExpositionError';
  constructor(
    readonly line: number,
    message: string,
  ) {
    super(`line ${line}: ${message}`);
  }
}

const NAME_START = /[a-zA-Z_:]/;
const NAME_CHAR = /[a-zA-Z0-9_:]/;
const TYPES = new Set<MetricType>(['counter', 'gauge', 'histogram', 'summary', 'untyped', 'unknown']);

export function parseValue(text: string): number {
  switch (text) {
    case '+Inf':
    case 'Inf':
    case '+inf':
    case 'inf':
      return Number.POSITIVE_INFINITY;
    case '-Inf':
    case '-inf':
      return Number.NEGATIVE_INFINITY;
    case 'NaN':
    case 'nan':
      return Number.NaN;
    default: {
      if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(text) && !/^[-+]?0x[0-9a-fA-F]+$/.test(text)) {
        throw new Error(`"${text}" is not a number`);
      }
      return Number(text);
    }
  }
}

class LineReader {
  pos = 0;
  constructor(
    readonly text: string,
    readonly lineNo: number,
  ) {}

  fail(message: string): never {
    throw new ExpositionError(this.lineNo, message);
  }

  skipSpaces(): void {
    while (this.pos < this.text.length && (this.text[this.pos] === ' ' || this.text[this.pos] === '\t'))
      this.pos++;
  }

  name(): string {
    const start = this.pos;
    if (!NAME_START.test(this.text[this.pos] ?? ''))
      this.fail(`expected a metric name at column ${start + 1}`);
    this.pos++;
    while (this.pos < this.text.length && NAME_CHAR.test(this.text[this.pos]!)) this.pos++;
    return this.text.slice(start, this.pos);
  }

  labelName(): string {
    const start = this.pos;
    if (!/[a-zA-Z_]/.test(this.text[this.pos] ?? ''))
      this.fail(`expected a label name at column ${start + 1}`);
    this.pos++;
    while (this.pos < this.text.length && /[a-zA-Z0-9_]/.test(this.text[this.pos]!)) this.pos++;
    return this.text.slice(start, this.pos);
  }

  quoted(): string {
    if (this.text[this.pos] !== '"') this.fail(`expected '"' at column ${this.pos + 1}`);
    this.pos++;
    let out = '';
    while (this.pos < this.text.length) {
      const c = this.text[this.pos++]!;
      if (c === '"') return out;
      if (c === '\\') {
        const next = this.text[this.pos++];
        if (next === 'n') out += '\n';
        else if (next === '\\') out += '\\';
        else if (next === '"') out += '"';
        else out += `\\${next ?? ''}`;
      } else {
        out += c;
      }
    }
    return this.fail('unterminated label value');
  }

  labels(): Record<string, string> {
    const labels: Record<string, string> = {};
    this.pos++; // '{'
    this.skipSpaces();
    while (this.text[this.pos] !== '}') {
      if (this.pos >= this.text.length) this.fail('unterminated label set');
      const name = this.labelName();
      this.skipSpaces();
      if (this.text[this.pos] !== '=') this.fail(`expected '=' after label ${name}`);
      this.pos++;
      this.skipSpaces();
      if (Object.hasOwn(labels, name)) this.fail(`duplicate label ${name}`);
      labels[name] = this.quoted();
      this.skipSpaces();
      if (this.text[this.pos] === ',') {
        this.pos++;
        this.skipSpaces();
      } else if (this.text[this.pos] !== '}') {
        this.fail(`expected ',' or '}' at column ${this.pos + 1}`);
      }
    }
    this.pos++; // '}'
    return labels;
  }

  token(): string {
    this.skipSpaces();
    const start = this.pos;
    while (this.pos < this.text.length && this.text[this.pos] !== ' ' && this.text[this.pos] !== '\t')
      this.pos++;
    return this.text.slice(start, this.pos);
  }
}

/** Parses a whole exposition. Throws {@link ExpositionError} naming the first bad line. */
export function parseExposition(text: string): Exposition {
  const samples: Sample[] = [];
  const types = new Map<string, MetricType>();
  const help = new Map<string, string>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i]!.endsWith('\r') ? lines[i]!.slice(0, -1) : lines[i]!;
    const line = raw.trim();
    if (line === '') continue;
    if (line.startsWith('#')) {
      const m = /^#\s+(HELP|TYPE)\s+([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\s+(.*))?$/.exec(line);
      if (!m) continue; // comments, `# EOF`, `# UNIT`
      if (m[1] === 'TYPE') {
        const type = (m[3] ?? '').trim() as MetricType;
        if (!TYPES.has(type)) throw new ExpositionError(i + 1, `unknown metric type "${m[3] ?? ''}"`);
        types.set(m[2]!, type);
      } else {
        help.set(m[2]!, (m[3] ?? '').replace(/\\n/g, '\n').replace(/\\\\/g, '\\'));
      }
      continue;
    }
    const reader = new LineReader(line, i + 1);
    const name = reader.name();
    reader.skipSpaces();
    const labels = reader.text[reader.pos] === '{' ? reader.labels() : {};
    const valueText = reader.token();
    if (valueText === '') reader.fail(`sample ${name} has no value`);
    let value = 0;
    try {
      value = parseValue(valueText);
    } catch (err) {
      reader.fail(`sample ${name}: ${(err as Error).message}`);
    }
    reader.skipSpaces();
    // OpenMetrics exemplars (`# {trace_id="…"} 0.2`) may follow the value.
    const tsText = reader.text[reader.pos] === '#' ? '' : reader.token();
    let timestamp: number | undefined;
    if (tsText !== '') {
      timestamp = Number(tsText);
      if (!Number.isFinite(timestamp)) reader.fail(`sample ${name}: timestamp "${tsText}" is not a number`);
    }
    reader.skipSpaces();
    if (reader.pos < reader.text.length && !reader.text.slice(reader.pos).startsWith('#')) {
      reader.fail(`unexpected text after sample ${name}: "${reader.text.slice(reader.pos)}"`);
    }
    samples.push(timestamp === undefined ? { name, labels, value } : { name, labels, value, timestamp });
  }
  return { samples, types, help };
}
