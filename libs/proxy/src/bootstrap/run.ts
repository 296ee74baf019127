import { parseArgs } from 'node:util';
import {
  createLogger,
  installLifecycle,
  isLogLevel,
  type Logger,
  onShutdown,
  startComponentTracing,
} from '@mizzen/runtime';
import { MeshProxy, type ProxyOptions } from '../agent/proxy.js';
import { FlagError } from './flags.js';

type ArgOptions = NonNullable<Parameters<typeof parseArgs>[0]>['options'];
export type ParsedFlags = Record<string, string | string[] | boolean | undefined>;

/**
 * The shared `main` of the sidecar and gateway apps: parse flags (one clear
 * line and exit 2 on a bad one), start the proxy, stop it on SIGINT/SIGTERM.
 */
export async function runProxyApp(opts: {
  component: string;
  usage: string;
  flags: ArgOptions;
  build: (values: ParsedFlags, logger: Logger) => Omit<ProxyOptions, 'logger'>;
}): Promise<void> {
  const fail = (message: string): never => {
    process.stderr.write(`${opts.component}: ${message}\n${opts.usage}\n`);
    process.exit(2);
  };
  let values: ParsedFlags = {};
  try {
    ({ values } = parseArgs({
      options: { ...opts.flags, 'log-level': { type: 'string' }, help: { type: 'boolean' } },
      strict: true,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${opts.usage}\n`);
    return;
  }
  const level = values['log-level'] as string | undefined;
  if (level !== undefined && !isLogLevel(level))
    fail(`--log-level must be one of trace, debug, info, warn, error, fatal, silent`);
  const logger = createLogger(opts.component, { level: level as 'info' | undefined });
  let options: Omit<ProxyOptions, 'logger'> | undefined;
  try {
    options = opts.build(values, logger);
  } catch (err) {
    if (err instanceof FlagError) fail(err.message);
    throw err;
  }
  installLifecycle(logger);
  // The process's own traces (its config updates) through OpenTelemetry's Node SDK, from the OTEL_* environment;
  // the requests' spans are Istio's, sent where the mesh config's tracing provider says (libs/telemetry).
  const node = options!.node;
  const namespace = node.metadata?.NAMESPACE;
  // TYPE~IP~POD.NAMESPACE~…: the pod, as Istio's proxies name themselves.
  const pod = node.id.split('~')[2]?.split('.')[0];
  startComponentTracing(opts.component, logger, {
    resourceAttributes: {
      ...(pod ? { 'k8s.pod.name': pod } : {}),
      ...(typeof namespace === 'string' ? { 'k8s.namespace.name': namespace } : {}),
    },
  });
  const proxy = new MeshProxy({ ...options!, logger });
  onShutdown(() => proxy.stop());
  try {
    const ports = await proxy.start();
    logger.info({ node: options!.node.id, ...ports }, `${opts.component} started`);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const message =
      e.code === 'EADDRINUSE' ? `admin or health port already in use (${e.message})` : e.message;
    logger.fatal({ err: e.message }, `${opts.component} failed to start`);
    process.stderr.write(`${opts.component}: ${message}\n`);
    process.exit(1);
  }
}
