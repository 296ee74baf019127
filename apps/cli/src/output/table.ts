/**
 * kubectl-style columns: upper-case headers, left-aligned, three spaces
 * apart. Empty cells read `<none>` as kubectl's do, unless `empty` says
 * otherwise (istioctl's tables leave them blank).
 */
export function formatTable(
  headers: string[],
  rows: (string | number | undefined)[][],
  opts: { empty?: string } = {},
): string {
  const empty = opts.empty ?? '<none>';
  const cells = [
    headers,
    ...rows.map((r) => r.map((c) => (c === undefined || c === '' ? empty : String(c)))),
  ];
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)));
  return cells
    .map((r) =>
      r
        .map((c, i) => (i === r.length - 1 ? c : (c ?? '').padEnd(widths[i]!)))
        .join('   ')
        .trimEnd(),
    )
    .join('\n');
}

/** `5s`, `3m`, `2h`, `4d` like kubectl's AGE column. */
export function age(iso: string | undefined, now = Date.now()): string {
  if (!iso) return '<unknown>';
  const s = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86400)}d`;
}
