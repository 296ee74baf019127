import { ConfigError, type Env } from './config.js';
import type { RunningService } from './server.js';

export interface RunOptions {
  env?: Env;
  /** How long closing may take before the process exits anyway (default 5s). */
  graceMs?: number;
  /** How often to check that MIZZEN_PARENT_PID is alive (default 500ms). */
  parentPollMs?: number;
}

/**
 * The process around a service, for `main.ts`: start it, and on failure print
 * one line (`details: cannot listen on 0.0.0.0:9080: address already in use`)
 * to stderr and exit 1. Once running, SIGINT/SIGTERM close it and exit 0, and
 * when MIZZEN_PARENT_PID is set (`mizzen up` sets it) the service also stops
 * once that process is gone, so a killed supervisor leaves no orphans.
 */
export async function runService(
  name: string,
  start: () => Promise<RunningService>,
  options: RunOptions = {},
): Promise<void> {
  const env = options.env ?? process.env;
  let service: RunningService;
  let parent: number | undefined;
  try {
    parent = parentPid(env);
    service = await start();
  } catch (err) {
    process.stderr.write(`${name}: ${startupFailure(err)}\n`);
    process.exit(1);
  }

  let stopping = false;
  const stop = (reason: string) => {
    if (stopping) return;
    stopping = true;
    service.app.log.info({ reason }, 'stopping');
    const deadline = setTimeout(() => process.exit(0), options.graceMs ?? 5000);
    deadline.unref();
    service.close().then(
      () => process.exit(0),
      (err: Error) => {
        process.stderr.write(`${name}: error while stopping: ${oneLine(err.message)}\n`);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
  if (parent !== undefined) {
    const pid = parent;
    const timer = setInterval(() => {
      if (!isAlive(pid)) stop(`parent process ${pid} exited`);
    }, options.parentPollMs ?? 500);
    timer.unref();
  }
}

function parentPid(env: Env): number | undefined {
  const raw = env.MIZZEN_PARENT_PID?.trim();
  if (!raw) return undefined;
  if (!/^\d+$/.test(raw) || Number(raw) < 1) {
    throw new ConfigError(`MIZZEN_PARENT_PID must be a process id, got '${raw}'`);
  }
  return Number(raw);
}

/** True while a process with this pid exists (EPERM: it exists but belongs to someone else). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** One sentence for why a service could not start. */
export function startupFailure(err: unknown): string {
  if (err instanceof ConfigError) return oneLine(err.message);
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number; hostname?: string };
  const where = e.address !== undefined && e.port !== undefined ? `${e.address}:${e.port}` : 'its address';
  switch (e.code) {
    case 'EADDRINUSE':
      return `cannot listen on ${where}: address already in use`;
    case 'EACCES':
      return `cannot listen on ${where}: permission denied`;
    case 'EADDRNOTAVAIL':
      return `cannot listen on ${where}: address not available on this machine`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot listen: HOST '${e.hostname ?? ''}' does not resolve`;
    default:
      return oneLine(e?.message ?? String(err));
  }
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}
