import type { Logger } from 'pino';

type ShutdownHook = () => Promise<void> | void;

const hooks: ShutdownHook[] = [];
let shuttingDown = false;

/** Registers work to do before the process exits (close servers, flush logs). Hooks run in reverse order. */
export function onShutdown(hook: ShutdownHook): void {
  hooks.push(hook);
}

/** Runs every shutdown hook (bounded by `graceMs`) and exits. Safe to call more than once. */
export async function shutdown(logger: Logger, reason: string, code = 0, graceMs = 5000): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  logger.info({ reason }, 'shutting down');
  const timer = setTimeout(() => {
    logger.warn({ graceMs }, 'shutdown hooks did not finish in time; exiting');
    process.exit(code);
  }, graceMs);
  timer.unref();
  for (const hook of [...hooks].reverse()) {
    try {
      await hook();
    } catch (err) {
      logger.error({ err }, 'shutdown hook failed');
    }
  }
  logger.flush?.();
  process.exit(code);
}

/**
 * SIGINT/SIGTERM stop the process cleanly. When MIZZEN_PARENT_PID is set (the
 * `mizzen up` supervisor sets it) the process also stops if that parent dies,
 * so a killed supervisor never leaves orphans behind.
 */
export function installLifecycle(logger: Logger): void {
  process.once('SIGINT', () => void shutdown(logger, 'SIGINT'));
  process.once('SIGTERM', () => void shutdown(logger, 'SIGTERM'));
  const parent = Number(process.env.MIZZEN_PARENT_PID);
  if (Number.isInteger(parent) && parent > 0) {
    const timer = setInterval(() => {
      if (!isAlive(parent)) void shutdown(logger, `parent process ${parent} exited`);
    }, 500);
    timer.unref();
  }
  process.on('uncaughtException', (err) => {
    logger.fatal({ err }, 'uncaught exception');
    void shutdown(logger, 'uncaught exception', 1);
  });
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
