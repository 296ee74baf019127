import { FlagError, type ParsedFlags, parsePort } from '@mizzen/proxy';
import { type Logger, onShutdown } from '@mizzen/runtime';
import type { XdsNode } from '@mizzen/xds';
import { ProxyTelemetry } from './observer.js';

/** The telemetry flags of the sidecar and gateway apps (pass to `runProxyApp`). */
export const TELEMETRY_FLAGS = {
  'stats-port': { type: 'string' },
  'otlp-endpoint': { type: 'string' },
} as const;

/** The sidecar's extra flag: Istio's metrics merging (`prometheus.io/scrape|port|path`) in local mode. */
export const APP_METRICS_FLAG = { 'app-metrics': { type: 'string' } } as const;

export interface TelemetryFlags {
  statsPort: number;
  otlpEndpoint?: string;
  appMetricsUrl?: string;
}

function httpUrl(value: string, flag: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new FlagError(`${flag} must be an http:// URL, got "${value}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    throw new FlagError(`${flag} must be an http:// or https:// URL, got "${value}"`);
  return value;
}

/** `--stats-port` (default 15020), `--otlp-endpoint URL`, `--app-metrics URL`; a bad value is a FlagError. */
export function parseTelemetryFlags(values: ParsedFlags): TelemetryFlags {
  const s = (k: string) => values[k] as string | undefined;
  const otlp = s('otlp-endpoint');
  const app = s('app-metrics');
  return {
    statsPort: parsePort(s('stats-port'), '--stats-port', 15020),
    ...(otlp !== undefined ? { otlpEndpoint: httpUrl(otlp, '--otlp-endpoint') } : {}),
    ...(app !== undefined ? { appMetricsUrl: httpUrl(app, '--app-metrics') } : {}),
  };
}

/**
 * Telemetry for a proxy process: the observer to hand to `MeshProxy`, and
 * `/stats/prometheus` started on `host:statsPort`. A port in use ends the
 * process with one line, as for the admin port; shutdown flushes spans and
 * log records after the proxy stopped.
 */
export function startProxyTelemetry(opts: {
  component: string;
  node: XdsNode;
  logger: Logger;
  host: string;
  flags: TelemetryFlags;
}): ProxyTelemetry {
  const telemetry = new ProxyTelemetry({
    node: opts.node,
    logger: opts.logger,
    statsHost: opts.host,
    statsPort: opts.flags.statsPort,
    appMetricsUrl: opts.flags.appMetricsUrl,
    otlpEndpoint: opts.flags.otlpEndpoint,
  });
  onShutdown(() => telemetry.close());
  telemetry.start().then(
    (port) => opts.logger.info({ statsPort: port }, 'serving /stats/prometheus'),
    (err: NodeJS.ErrnoException) => {
      const message =
        err.code === 'EADDRINUSE'
          ? `stats port ${opts.flags.statsPort} already in use (${err.message})`
          : err.message;
      opts.logger.fatal({ err: err.message }, `${opts.component} failed to start`);
      process.stderr.write(`${opts.component}: ${message}\n`);
      process.exit(1);
    },
  );
  return telemetry;
}
