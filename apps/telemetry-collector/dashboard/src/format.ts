/** Number formatting shared by every view. */
export function rate(perSecond: number | null | undefined): string {
  if (perSecond === null || perSecond === undefined || !Number.isFinite(perSecond)) return '–';
  if (perSecond === 0) return '0/s';
  if (perSecond < 0.01) return '<0.01/s';
  if (perSecond < 10) return `${perSecond.toFixed(2)}/s`;
  if (perSecond < 1000) return `${perSecond.toFixed(1)}/s`;
  return `${(perSecond / 1000).toFixed(1)}k/s`;
}

export function percent(share: number | null | undefined): string {
  if (share === null || share === undefined || !Number.isFinite(share)) return '–';
  const p = share * 100;
  if (p === 0) return '0%';
  if (p < 0.1) return '<0.1%';
  return `${p < 10 ? p.toFixed(1) : p.toFixed(0)}%`;
}

export function ms(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  if (value === 0) return '0 ms';
  if (value < 1) return `${value.toFixed(2)} ms`;
  if (value < 1000) return `${value < 10 ? value.toFixed(1) : value.toFixed(0)} ms`;
  return `${(value / 1000).toFixed(2)} s`;
}

/** A stretch of time: `0.6 s`, `45 s`, `4.5 min`, `1.2 h`. */
export function seconds(value: number | null | undefined): string {
  if (value === null || value === undefined || !Number.isFinite(value)) return '–';
  if (value < 10) return `${value.toFixed(1)} s`;
  if (value < 120) return `${Math.round(value)} s`;
  if (value < 7200) return `${(value / 60).toFixed(1)} min`;
  return `${(value / 3600).toFixed(1)} h`;
}

export function micros(us: number): string {
  return ms(us / 1000);
}

export function bytes(perSecond: number | null | undefined, suffix = '/s'): string {
  if (perSecond === null || perSecond === undefined || !Number.isFinite(perSecond)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let v = perSecond;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v < 10 && u > 0 ? v.toFixed(1) : v.toFixed(0)} ${units[u]}${suffix}`;
}

export function clock(msSinceEpoch: number): string {
  return new Date(msSinceEpoch).toLocaleTimeString([], { hour12: false });
}

export function dateTime(msSinceEpoch: number): string {
  const d = new Date(msSinceEpoch);
  return `${d.toLocaleDateString()} ${d.toLocaleTimeString([], { hour12: false })}`;
}

export function ago(msSinceEpoch: number | undefined, now = Date.now()): string {
  if (!msSinceEpoch) return 'never';
  const s = Math.max(0, Math.round((now - msSinceEpoch) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  return `${Math.round(s / 3600)}h ago`;
}

const PALETTE = [
  '#245c8f',
  '#2a9d8f',
  '#8e44ad',
  '#d9822b',
  '#5c7c2a',
  '#c0392b',
  '#3d5a80',
  '#b5179e',
  '#7f5539',
  '#0077b6',
];

/** A stable colour per service name, for chips and waterfall bars; `index` picks distinct ones within a trace. */
export function serviceColor(name: string, index?: number): string {
  if (index !== undefined) return PALETTE[index % PALETTE.length]!;
  let hash = 0;
  for (let i = 0; i < name.length; i++) hash = (hash * 31 + name.charCodeAt(i)) | 0;
  return PALETTE[Math.abs(hash) % PALETTE.length]!;
}

/** Error-rate thresholds: above 0 is degraded (orange), 5% and up is failing (red). */
export const ERROR_DEGRADED = 0;
export const ERROR_FAILURE = 0.05;

export function health(errorRate: number | null | undefined): 'healthy' | 'degraded' | 'failure' | 'idle' {
  if (errorRate === null || errorRate === undefined) return 'idle';
  if (errorRate >= ERROR_FAILURE) return 'failure';
  if (errorRate > ERROR_DEGRADED) return 'degraded';
  return 'healthy';
}
