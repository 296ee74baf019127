import { type LevelWithSilent, type Logger, pino } from 'pino';

export type { Logger } from 'pino';

export interface LoggerOptions {
  /** Initial level; defaults to MIZZEN_LOG_LEVEL or `info`. */
  level?: LevelWithSilent;
  /** Where lines go; defaults to stdout. Tests pass a stream to capture them. */
  destination?: NodeJS.WritableStream;
}

const LEVELS = new Set(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']);

export function isLogLevel(value: string): value is LevelWithSilent {
  return LEVELS.has(value);
}

/**
 * Structured JSON logs, one line per event, every line carrying the component
 * name so the output of many processes can be interleaved and still read.
 */
export function createLogger(component: string, options: LoggerOptions = {}): Logger {
  const envLevel = process.env.MIZZEN_LOG_LEVEL;
  const level = options.level ?? (envLevel && isLogLevel(envLevel) ? envLevel : 'info');
  const dest = options.destination ?? pino.destination({ dest: 1, sync: false });
  return pino(
    {
      level,
      base: { component, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    dest as pino.DestinationStream,
  );
}
