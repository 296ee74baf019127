export { type GetOptions, HttpClient, type HttpClientOptions, UpstreamError } from './client.js';
export {
  BAD_PRODUCT_ID,
  type CallerConfig,
  ConfigError,
  DEFAULT_HOST,
  DEFAULT_SERVICE_PORT,
  type Env,
  type ListenConfig,
  type LogLevel,
  type ProxyConfig,
  parseProductId,
  readCallerConfig,
  readListen,
  readLogLevel,
  readPort,
  readProxy,
  readServerConfig,
  type ServerConfig,
  serviceUrl,
} from './config.js';
export { FORWARDED_HEADERS, forwardedHeaders } from './headers.js';
export { isAlive, type RunOptions, runService, startupFailure } from './lifecycle.js';
export { createService, listen, type RunningService, type ServiceOptions } from './server.js';
