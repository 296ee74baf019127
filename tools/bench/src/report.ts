import type { RunOptions, ScenarioResult } from './run.js';

/** The side-by-side table the benchmark prints (and the README records). */
export function formatReport(results: ScenarioResult[], opts: RunOptions, command: string): string {
  const baseline = results[0];
  const rows = results.map((r) => [
    r.name,
    r.requestsPerSec.toFixed(0),
    baseline && baseline.requestsPerSec > 0
      ? `${((r.requestsPerSec / baseline.requestsPerSec) * 100).toFixed(0)}%`
      : '-',
    r.p50Ms.toFixed(2),
    r.p99Ms.toFixed(2),
    String(r.requests),
    String(r.errors + r.non2xx),
  ]);
  const headers = [
    'scenario',
    'req/s',
    `vs ${baseline?.name ?? 'first'}`,
    'p50 ms',
    'p99 ms',
    'requests',
    'errors',
  ];
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  return [
    line(headers),
    `|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`,
    ...rows.map(line),
    '',
    `${opts.connections} connections, ${opts.durationSec}s per scenario after ${opts.warmupSec}s warm-up; node ${process.version}.`,
    `reproduce: ${command}`,
  ].join('\n');
}
