/**
 * Reading the environment the way Istio's Bookinfo images do: `PORT`/`HOST`
 * to listen, `<SERVICE>_HOSTNAME`, `<SERVICE>_SERVICE_PORT` and
 * `SERVICES_DOMAIN` to find the other services, `HTTP_PROXY`/`NO_PROXY` for
 * the outbound proxy (the sidecar in local mode).
 */

export type Env = Readonly<Record<string, string | undefined>>;

/** A mistake in the environment a user can fix; its message is one sentence naming the variable. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export const DEFAULT_SERVICE_PORT = 9080;
export const DEFAULT_HOST = '0.0.0.0';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface ListenConfig {
  host: string;
  port: number;
}

export interface ProxyConfig {
  /** The forward proxy for http:// targets; undefined means connect directly. */
  httpProxy?: string;
  /** Hosts that bypass the proxy, in NO_PROXY syntax; empty means none. */
  noProxy: string;
}

/** What every Bookinfo service reads from its environment. */
export interface ServerConfig {
  listen: ListenConfig;
  logLevel: LogLevel;
}

/** What a service that calls other services reads: also the outbound proxy. */
export interface CallerConfig extends ServerConfig {
  proxy: ProxyConfig;
}

function nonEmpty(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value ? value : undefined;
}

/** A TCP port from `env[name]`: an integer 0–65535 (0 asks the kernel for a free one). */
export function readPort(env: Env, name: string, fallback: number): number {
  const raw = nonEmpty(env, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw) || Number(raw) > 65535) {
    throw new ConfigError(`${name} must be a port number from 0 to 65535, got '${raw}'`);
  }
  return Number(raw);
}

/** `HOST` and `PORT`, defaulting to 0.0.0.0:9080 like the Bookinfo images. */
export function readListen(env: Env): ListenConfig {
  return { host: nonEmpty(env, 'HOST') ?? DEFAULT_HOST, port: readPort(env, 'PORT', DEFAULT_SERVICE_PORT) };
}

/** `http_proxy`/`HTTP_PROXY` (lower case wins, as curl does) and `no_proxy`/`NO_PROXY`. */
export function readProxy(env: Env): ProxyConfig {
  const httpProxy = nonEmpty(env, 'http_proxy') ?? nonEmpty(env, 'HTTP_PROXY');
  if (httpProxy !== undefined) {
    let url: URL;
    try {
      url = new URL(httpProxy);
    } catch {
      throw new ConfigError(`HTTP_PROXY must be a URL like http://127.0.0.1:15001, got '${httpProxy}'`);
    }
    if (url.protocol !== 'http:') {
      throw new ConfigError(`HTTP_PROXY must be an http:// URL, got '${httpProxy}'`);
    }
  }
  return { httpProxy, noProxy: env.no_proxy ?? env.NO_PROXY ?? '' };
}

/** `LOG_LEVEL` (or `MIZZEN_LOG_LEVEL`), default `info`. */
export function readLogLevel(env: Env): LogLevel {
  const raw = nonEmpty(env, 'LOG_LEVEL') ?? nonEmpty(env, 'MIZZEN_LOG_LEVEL') ?? 'info';
  const level = LOG_LEVELS.find((l) => l === raw.toLowerCase());
  if (!level) throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got '${raw}'`);
  return level;
}

export function readServerConfig(env: Env): ServerConfig {
  return { listen: readListen(env), logLevel: readLogLevel(env) };
}

export function readCallerConfig(env: Env): CallerConfig {
  return { ...readServerConfig(env), proxy: readProxy(env) };
}

/**
 * The base URL of another Bookinfo service, built as Istio's productpage does:
 * `http://${<NAME>_HOSTNAME ?? name}${SERVICES_DOMAIN ? '.' + SERVICES_DOMAIN : ''}:${<NAME>_SERVICE_PORT ?? 9080}`.
 */
export function serviceUrl(env: Env, service: string): string {
  const prefix = service.toUpperCase();
  const hostname = nonEmpty(env, `${prefix}_HOSTNAME`) ?? service;
  const domain = nonEmpty(env, 'SERVICES_DOMAIN');
  const port = readPort(env, `${prefix}_SERVICE_PORT`, DEFAULT_SERVICE_PORT);
  const host = domain ? `${hostname}.${domain.replace(/^\./, '')}` : hostname;
  const base = `http://${host}:${port}`;
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new ConfigError(`${prefix}_HOSTNAME and SERVICES_DOMAIN must form a host name, got '${host}'`);
  }
  if (url.pathname !== '/' || url.search || url.username) {
    throw new ConfigError(`${prefix}_HOSTNAME and SERVICES_DOMAIN must form a host name, got '${host}'`);
  }
  return base;
}

/** Parses a Bookinfo product id: a non-negative integer in decimal. */
export function parseProductId(raw: string | undefined): number | undefined {
  if (raw === undefined || !/^\d{1,15}$/.test(raw)) return undefined;
  return Number(raw);
}

/** The answer Istio's Bookinfo services give for a product id that is not a number. */
export const BAD_PRODUCT_ID = { error: 'please provide numeric product id' } as const;
