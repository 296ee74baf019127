import type { PathSegment } from '../issues.js';

export type Severity = 'error' | 'warning';

/** An issue inside one resource, before it is tied to a source and document. */
export interface RawIssue {
  severity: Severity;
  path: PathSegment[];
  message: string;
}

/**
 * Collects the issues of one resource. `at('spec', 'http', 0)` narrows to a
 * field, so semantic checks read like the YAML they check.
 */
export class Checker {
  constructor(
    private readonly sink: RawIssue[],
    readonly path: readonly PathSegment[] = [],
  ) {}

  at(...segments: PathSegment[]): Checker {
    return new Checker(this.sink, [...this.path, ...segments]);
  }

  error(message: string): void {
    this.sink.push({ severity: 'error', path: [...this.path], message });
  }

  warn(message: string): void {
    this.sink.push({ severity: 'warning', path: [...this.path], message });
  }

  /** Reports `reason` as an error when there is one; true when there was none. */
  check(reason: string | undefined): boolean {
    if (reason === undefined) return true;
    this.error(reason);
    return false;
  }

  /** True when an error was reported at or below this path. */
  hasErrors(): boolean {
    return this.sink.some((i) => i.severity === 'error' && this.path.every((s, n) => i.path[n] === s));
  }
}
