import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createLogger, installLifecycle, onShutdown } from '@mizzen/runtime';
import { Pilot } from './pilot.js';

const USAGE = `usage: pilot [--host ADDR] [--xds-port 15010] [--http-port 15014] [--config-dir DIR]... [--store FILE] [--registrations FILE]
             [--registration-grace-ms MS] [--outbound-traffic-policy ALLOW_ANY|REGISTRY_ONLY]`;

function fail(message: string): never {
  process.stderr.write(`pilot: ${message}\n${USAGE}\n`);
  process.exit(2);
}

function port(value: string | undefined, flag: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    fail(`${flag} must be a port number (0-65535), got "${value}"`);
  return n;
}

async function main(): Promise<void> {
  let values: Record<string, string | string[] | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      options: {
        host: { type: 'string' },
        'xds-port': { type: 'string' },
        'http-port': { type: 'string' },
        'config-dir': { type: 'string', multiple: true },
        store: { type: 'string' },
        registrations: { type: 'string' },
        'registration-grace-ms': { type: 'string' },
        'outbound-traffic-policy': { type: 'string' },
        'log-level': { type: 'string' },
        help: { type: 'boolean' },
      },
      strict: true,
    }));
  } catch (err) {
    fail((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const policy = (values['outbound-traffic-policy'] as string | undefined) ?? 'ALLOW_ANY';
  if (policy !== 'ALLOW_ANY' && policy !== 'REGISTRY_ONLY') {
    fail(`--outbound-traffic-policy must be ALLOW_ANY or REGISTRY_ONLY, got "${policy}"`);
  }
  const grace = values['registration-grace-ms'] as string | undefined;
  if (grace !== undefined && !/^\d+$/.test(grace))
    fail(`--registration-grace-ms must be a number of milliseconds`);
  const logger = createLogger('pilot', {
    level: (values['log-level'] as 'info' | undefined) ?? undefined,
  });
  installLifecycle(logger);
  const storeFile = path.resolve(
    (values.store as string | undefined) ?? path.join(os.homedir(), '.mizzen', 'pilot', 'store.json'),
  );
  const pilot = new Pilot({
    logger,
    host: (values.host as string | undefined) ?? '0.0.0.0',
    xdsPort: port(values['xds-port'] as string | undefined, '--xds-port', 15010),
    httpPort: port(values['http-port'] as string | undefined, '--http-port', 15014),
    configDirs: ((values['config-dir'] as string[] | undefined) ?? []).map((d) => path.resolve(d)),
    storeFile,
    registrationsFile: path.resolve(
      (values.registrations as string | undefined) ??
        path.join(path.dirname(storeFile), 'registrations.json'),
    ),
    registrationGraceMs: grace === undefined ? undefined : Number(grace),
    mesh: { outboundTrafficPolicy: policy },
  });
  onShutdown(() => pilot.stop());
  try {
    await pilot.start();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    logger.fatal({ err: e.message }, 'pilot failed to start');
    process.stderr.write(
      `pilot: ${e.code === 'EADDRINUSE' ? `port already in use (${e.message})` : e.message}\n`,
    );
    process.exit(1);
  }
}

void main();
