import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);

function entry(pkg: string): string {
  return path.join(path.dirname(require.resolve(`${pkg}/package.json`)), 'dist', 'main.js');
}

/** Runs a built Mizzen app (pilot, sidecar-agent) as a child process with its logs discarded. */
export function startApp(pkg: string, args: string[], env: Record<string, string> = {}): ChildProcess {
  const profile = process.env.MIZZEN_BENCH_CPU_PROF
    ? ['--cpu-prof', `--cpu-prof-dir=${process.env.MIZZEN_BENCH_CPU_PROF}`]
    : [];
  return spawn(process.execPath, [...profile, entry(pkg), ...args], {
    stdio: ['ignore', 'ignore', 'inherit'],
    env: { ...process.env, MIZZEN_LOG_LEVEL: 'warn', MIZZEN_PARENT_PID: String(process.pid), ...env },
  });
}

export async function stopApps(children: ChildProcess[]): Promise<void> {
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          const timer = setTimeout(() => c.kill('SIGKILL'), 5000);
          c.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          c.kill('SIGTERM');
        }),
    ),
  );
}
