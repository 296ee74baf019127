import { createLogger, installLifecycle, onShutdown, startComponentTracing } from '@mizzen/runtime';
import { FlagError, parseFlags, USAGE } from './flags.js';

function fail(message: string): never {
  process.stderr.write(`telemetry-collector: ${message} (see --help)\n`);
  process.exit(2);
}

async function main(): Promise<void> {
  let flags: ReturnType<typeof parseFlags>;
  try {
    flags = parseFlags(process.argv.slice(2));
  } catch (err) {
    if (err instanceof FlagError) fail(err.message);
    throw err;
  }
  if (flags === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const { logLevel, ...options } = flags;
  const logger = createLogger('telemetry-collector', { level: logLevel });
  installLifecycle(logger);
  startComponentTracing('telemetry-collector', logger);
  // Loaded after the flags are checked, so a bad flag is reported without loading the servers.
  const { Collector } = await import('./collector.js');
  const collector = new Collector({ ...options, logger });
  onShutdown(() => collector.stop());
  try {
    await collector.start();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    logger.fatal({ err: e.message }, 'telemetry collector failed to start');
    process.stderr.write(
      `telemetry-collector: ${e.code === 'EADDRINUSE' ? `port already in use (${e.message})` : e.message}\n`,
    );
    process.exit(1);
  }
}

void main();
