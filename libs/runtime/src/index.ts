export { BrowserFailureRecorder } from './browser-artifacts.js';
export { installLifecycle, isAlive, onShutdown, shutdown } from './lifecycle.js';
export { createLogger, isLogLevel, type Logger, type LoggerOptions } from './logger.js';
export { freePort, isPortInUse, PortAllocator } from './ports.js';
export {
  type ComponentTracingOptions,
  componentTracer,
  SpanKind,
  SpanStatusCode,
  startComponentTracing,
  withSpan,
} from './tracing.js';
