import { spawn } from 'node:child_process';
import fs from 'node:fs';
import type { LintException } from './exposition.js';

/** Where Debian's prometheus package installs promtool (`PROMTOOL` overrides it). */
export const PROMTOOL = process.env.PROMTOOL ?? '/usr/bin/promtool';

/** One complaint of promtool's linter: the metric family and the problem, as it prints them. */
export interface PromtoolProblem {
  readonly metric: string;
  readonly problem: string;
}

/** What `promtool check metrics` said about one exposition. */
export interface PromtoolReport {
  /** 0: clean; 3: lint problems only; 1: the exposition did not parse. */
  readonly exitCode: number;
  readonly problems: readonly PromtoolProblem[];
  /** The parser's error (`text format parsing error in line 3: …`), when the exposition did not parse. */
  readonly error?: string;
}

/**
 * Runs the real `promtool check metrics` on an exposition (stdin in, its
 * verdict out), bounded to 10 s. Fails with one sentence when promtool is
 * not installed.
 */
export async function promtoolCheckMetrics(text: string, binary = PROMTOOL): Promise<PromtoolReport> {
  if (!fs.existsSync(binary))
    throw new Error(`${binary} is missing: install Debian's prometheus package (apt-get install prometheus)`);
  const { code, stderr, stdout } = await new Promise<{ code: number; stderr: string; stdout: string }>(
    (resolve, reject) => {
      const child = spawn(binary, ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      child.stdout.on('data', (c: Buffer) => {
        out += c.toString();
      });
      child.stderr.on('data', (c: Buffer) => {
        err += c.toString();
      });
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.once('close', (exitCode, signal) => {
        clearTimeout(timer);
        if (signal) reject(new Error(`promtool check metrics was stopped by ${signal} (over 10 s?)`));
        else resolve({ code: exitCode ?? 0, stderr: err, stdout: out });
      });
      child.stdin.on('error', () => {
        // promtool stops reading at a parse error; what it says on stderr is the verdict.
      });
      child.stdin.end(text);
    },
  );
  const problems: PromtoolProblem[] = [];
  let error: string | undefined;
  for (const line of `${stdout}\n${stderr}`.split('\n')) {
    const l = line.trim();
    if (!l) continue;
    const parse = /^error while linting: (.*)$/.exec(l);
    if (parse) {
      error = parse[1];
      continue;
    }
    // `<metric name> <problem>`: metric names have no spaces.
    const space = l.indexOf(' ');
    if (space > 0) problems.push({ metric: l.slice(0, space), problem: l.slice(space + 1) });
  }
  if (code !== 0 && problems.length === 0 && error === undefined)
    error = `promtool exited with ${code}: ${(stderr || stdout).trim()}`;
  return { exitCode: code, problems, ...(error !== undefined ? { error } : {}) };
}

/** promtool's complaints split by whether a documented exception explains them. */
export interface ExplainedReport {
  /** Complaints no exception explains, as `metric problem` lines (and a parse error, if any): should be empty. */
  readonly unexplained: string[];
  /** Complaints a documented exception explains, as `metric problem` lines, sorted. */
  readonly explained: string[];
}

/** Sorts promtool's complaints into those the exceptions (Istio's fixed names) explain and the rest. */
export function explainProblems(report: PromtoolReport, allow: readonly LintException[]): ExplainedReport {
  const unexplained: string[] = report.error !== undefined ? [`parse error: ${report.error}`] : [];
  const explained: string[] = [];
  for (const p of report.problems) {
    const line = `${p.metric} ${p.problem}`;
    if (allow.some((e) => e.metric.test(p.metric) && e.problem === p.problem)) explained.push(line);
    else unexplained.push(line);
  }
  return { unexplained, explained: explained.sort() };
}
