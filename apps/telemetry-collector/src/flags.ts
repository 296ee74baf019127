import path from 'node:path';
import { parseArgs } from 'node:util';
import { isLogLevel, type LoggerOptions } from '@mizzen/runtime';
import type { StaticTarget } from './scrape.js';

export const USAGE = `usage: telemetry-collector [--host ADDR] [--http-port 20001] [--otlp-http-port 4318] [--otlp-grpc-port 4317]
       [--pilot URL|none] [--scrape-interval 15s] [--scrape-timeout 5s] [--scrape-target NAME=URL]...
       [--redis URL] [--retention 1h] [--max-spans N] [--max-logs N] [--max-metric-points N] [--max-intervals N]
       [--max-request-bytes N] [--max-batch-items N] [--dashboard-dir DIR] [--log-level LEVEL]`;

export class FlagError extends Error {}

export interface Flags {
  host: string;
  httpPort: number;
  otlpHttpPort: number;
  otlpGrpcPort: number;
  pilotUrl?: string;
  scrapeIntervalMs: number;
  scrapeTimeoutMs: number;
  staticTargets: StaticTarget[];
  redisUrl?: string;
  retentionMs: number;
  maxSpans: number;
  maxLogs: number;
  maxMetricPoints: number;
  maxIntervals: number;
  maxRequestBytes: number;
  maxBatchItems: number;
  dashboardDir?: string;
  logLevel?: NonNullable<LoggerOptions['level']>;
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `500ms`, `15s`, `5m`, `1h`, `2d`, `1h30m` → milliseconds; undefined when it is not a duration. */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim();
  if (!/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(trimmed)) return undefined;
  let total = 0;
  for (const m of trimmed.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) total += Number(m[1]) * UNITS[m[2]!]!;
  return Math.round(total);
}

export function formatDuration(ms: number): string {
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1000],
  ] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

function port(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n > 65535)
    throw new FlagError(`${flag} must be a port number (0-65535), got "${value}"`);
  return n;
}

function count(value: string | undefined, flag: string, fallback: number, min = 1): number {
  if (value === undefined) return fallback;
  if (!/^\d+$/.test(value) || Number(value) < min) {
    throw new FlagError(`${flag} must be a whole number of at least ${min}, got "${value}"`);
  }
  return Number(value);
}

function duration(value: string | undefined, flag: string, fallback: number, minMs: number): number {
  if (value === undefined) return fallback;
  const ms = parseDuration(value);
  if (ms === undefined)
    throw new FlagError(`${flag} must be a duration like 500ms, 15s, 5m or 1h, got "${value}"`);
  if (ms < minMs) throw new FlagError(`${flag} must be at least ${formatDuration(minMs)}, got "${value}"`);
  return ms;
}

function httpUrl(value: string, flag: string, protocols = ['http:', 'https:']): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new FlagError(`${flag} must be a URL like ${protocols[0]}//127.0.0.1:15014, got "${value}"`);
  }
  if (!protocols.includes(url.protocol)) {
    throw new FlagError(`${flag} must use ${protocols.join(' or ')}, got "${value}"`);
  }
  return value;
}

/** Parses and validates the command line. Throws FlagError with one sentence naming the flag. */
export function parseFlags(argv: string[], env: NodeJS.ProcessEnv = process.env): Flags | 'help' {
  let values: Record<string, string | string[] | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        host: { type: 'string' },
        'http-port': { type: 'string' },
        'otlp-http-port': { type: 'string' },
        'otlp-grpc-port': { type: 'string' },
        pilot: { type: 'string' },
        'scrape-interval': { type: 'string' },
        'scrape-timeout': { type: 'string' },
        'scrape-target': { type: 'string', multiple: true },
        redis: { type: 'string' },
        retention: { type: 'string' },
        'max-spans': { type: 'string' },
        'max-logs': { type: 'string' },
        'max-metric-points': { type: 'string' },
        'max-intervals': { type: 'string' },
        'max-request-bytes': { type: 'string' },
        'max-batch-items': { type: 'string' },
        'dashboard-dir': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new FlagError((err as Error).message.split('\n')[0]!);
  }
  if (values.help) return 'help';
  const s = (name: string) => values[name] as string | undefined;

  const scrapeIntervalMs = duration(s('scrape-interval'), '--scrape-interval', 15_000, 100);
  const scrapeTimeoutMs = duration(
    s('scrape-timeout'),
    '--scrape-timeout',
    Math.min(5000, scrapeIntervalMs),
    50,
  );
  if (scrapeTimeoutMs > scrapeIntervalMs) {
    throw new FlagError(
      `--scrape-timeout (${formatDuration(scrapeTimeoutMs)}) must not exceed --scrape-interval (${formatDuration(scrapeIntervalMs)})`,
    );
  }
  const retentionMs = duration(s('retention'), '--retention', 3_600_000, 60_000);

  const pilotFlag = s('pilot') ?? 'http://127.0.0.1:15014';
  const pilotUrl = pilotFlag === 'none' || pilotFlag === '' ? undefined : httpUrl(pilotFlag, '--pilot');

  const staticTargets = ((values['scrape-target'] as string[] | undefined) ?? []).map((spec) => {
    const eq = spec.indexOf('=');
    if (eq <= 0) throw new FlagError(`--scrape-target must be NAME=URL, got "${spec}"`);
    return { name: spec.slice(0, eq), url: httpUrl(spec.slice(eq + 1), '--scrape-target') };
  });
  const names = new Set<string>();
  for (const t of staticTargets) {
    if (names.has(t.name)) throw new FlagError(`--scrape-target name "${t.name}" is used twice`);
    names.add(t.name);
  }

  const redisFlag = s('redis') ?? env.REDIS_URL;
  const redisUrl = redisFlag
    ? httpUrl(redisFlag, s('redis') ? '--redis' : 'REDIS_URL', ['redis:', 'rediss:'])
    : undefined;

  const logLevel = s('log-level');
  if (logLevel !== undefined && !isLogLevel(logLevel)) {
    throw new FlagError(
      `--log-level must be one of trace, debug, info, warn, error, fatal, silent, got "${logLevel}"`,
    );
  }

  const flags: Flags = {
    host: s('host') ?? '0.0.0.0',
    httpPort: port(s('http-port'), '--http-port', 20001),
    otlpHttpPort: port(s('otlp-http-port'), '--otlp-http-port', 4318),
    otlpGrpcPort: port(s('otlp-grpc-port'), '--otlp-grpc-port', 4317),
    pilotUrl,
    scrapeIntervalMs,
    scrapeTimeoutMs,
    staticTargets,
    redisUrl,
    retentionMs,
    maxSpans: count(s('max-spans'), '--max-spans', 100_000),
    maxLogs: count(s('max-logs'), '--max-logs', 50_000),
    maxMetricPoints: count(s('max-metric-points'), '--max-metric-points', 100_000),
    maxIntervals: count(s('max-intervals'), '--max-intervals', 50_000),
    maxRequestBytes: count(s('max-request-bytes'), '--max-request-bytes', 8 * 1024 * 1024, 1024),
    maxBatchItems: count(s('max-batch-items'), '--max-batch-items', 20_000),
    dashboardDir: s('dashboard-dir') === undefined ? undefined : path.resolve(s('dashboard-dir')!),
    logLevel: logLevel as NonNullable<LoggerOptions['level']> | undefined,
  };
  const ports = [
    ['--http-port', flags.httpPort],
    ['--otlp-http-port', flags.otlpHttpPort],
    ['--otlp-grpc-port', flags.otlpGrpcPort],
  ] as const;
  for (let i = 0; i < ports.length; i++) {
    for (let j = i + 1; j < ports.length; j++) {
      if (ports[i]![1] !== 0 && ports[i]![1] === ports[j]![1]) {
        throw new FlagError(
          `${ports[i]![0]} and ${ports[j]![0]} are both ${ports[i]![1]}; each needs its own port`,
        );
      }
    }
  }
  return flags;
}
