import { FlagError, type ParsedFlags, parsePort } from '@mizzen/proxy';
import { type Logger, onShutdown } from '@mizzen/runtime';
import type { XdsNode } from '@mizzen/xds';
import { ProxyTelemetry } from './observer.js';
import type { AppProbe } from './stats-server.js';

/** The telemetry flags of the sidecar and gateway apps (pass to `runProxyApp`). */
export const TELEMETRY_FLAGS = {
  'stats-port': { type: 'string' },
  'otlp-endpoint': { type: 'string' },
} as const;

/** The sidecar's extra flag: Istio's metrics merging (`prometheus.io/scrape|port|path`) in local mode; on Kubernetes the injector's ISTIO_PROMETHEUS_ANNOTATIONS. */
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

/**
 * The app's metrics endpoint from Istio's `ISTIO_PROMETHEUS_ANNOTATIONS` (the
 * pod's prometheus.io/scrape|path|port, which the injector hands the agent
 * when merging metrics), as Istio's agent reads it: path `/metrics` and port
 * 80 unless given; nothing when scraping is off or the port is the agent's own.
 */
export function appMetricsFromAnnotations(json: string, statsPort: number): string | undefined {
  let scrape: { scrape?: unknown; path?: unknown; port?: unknown };
  try {
    scrape = JSON.parse(json) as typeof scrape;
  } catch {
    throw new FlagError(
      `ISTIO_PROMETHEUS_ANNOTATIONS must be JSON like {"scrape":"true","port":"8080"}, got "${json}"`,
    );
  }
  if (!scrape || typeof scrape !== 'object')
    throw new FlagError('ISTIO_PROMETHEUS_ANNOTATIONS must be a JSON object');
  const str = (v: unknown) => (typeof v === 'string' ? v : '');
  if (str(scrape.scrape) === 'false') return undefined;
  const port = str(scrape.port) || '80';
  if (!/^\d{1,5}$/.test(port) || Number(port) > 65535)
    throw new FlagError(
      `ISTIO_PROMETHEUS_ANNOTATIONS: prometheus.io/port must be a port number, got "${port}"`,
    );
  if (Number(port) === statsPort) return undefined;
  const path = str(scrape.path) || '/metrics';
  return `http://127.0.0.1:${port}${path.startsWith('/') ? path : `/${path}`}`;
}

/**
 * `--stats-port` (default 15020), `--otlp-endpoint URL`, `--app-metrics URL`
 * (else Istio's ISTIO_PROMETHEUS_ANNOTATIONS from the injector); a bad value is a FlagError.
 */
export function parseTelemetryFlags(
  values: ParsedFlags,
  env: NodeJS.ProcessEnv = process.env,
): TelemetryFlags {
  const s = (k: string) => values[k] as string | undefined;
  const otlp = s('otlp-endpoint');
  const statsPort = parsePort(s('stats-port'), '--stats-port', 15020);
  const flag = s('app-metrics');
  const annotations = env.ISTIO_PROMETHEUS_ANNOTATIONS;
  const app =
    flag !== undefined
      ? httpUrl(flag, '--app-metrics')
      : annotations
        ? appMetricsFromAnnotations(annotations, statsPort)
        : undefined;
  return {
    statsPort,
    ...(otlp !== undefined ? { otlpEndpoint: httpUrl(otlp, '--otlp-endpoint') } : {}),
    ...(app !== undefined ? { appMetricsUrl: app } : {}),
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
  /** The sidecar's app prober: kubelet's rewritten probes answered on the stats port. */
  appProbe?: AppProbe;
}): ProxyTelemetry {
  const telemetry = new ProxyTelemetry({
    node: opts.node,
    logger: opts.logger,
    statsHost: opts.host,
    statsPort: opts.flags.statsPort,
    appMetricsUrl: opts.flags.appMetricsUrl,
    otlpEndpoint: opts.flags.otlpEndpoint,
    ...(opts.appProbe ? { appProbe: opts.appProbe } : {}),
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
