import { type ChildProcess, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);

/** The built entry point of a workspace app. */
export function appEntry(pkg: string): string {
  return path.join(path.dirname(require.resolve(`${pkg}/package.json`)), 'dist', 'main.js');
}

export interface Proc {
  name: string;
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  kill: (signal?: NodeJS.Signals) => Promise<number | null>;
}

/**
 * Starts real processes for a test and guarantees they are gone afterwards.
 * Output is kept in memory so a failing test can show what a process said.
 */
export class Processes {
  private readonly procs: Proc[] = [];

  start(name: string, entry: string, args: string[], env: Record<string, string> = {}): Proc {
    const child = spawn(process.execPath, [entry, ...args], {
      env: { ...process.env, MIZZEN_LOG_LEVEL: process.env.MIZZEN_LOG_LEVEL ?? 'info', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    const keep = (chunk: Buffer) => {
      out += chunk.toString();
      if (out.length > 200_000) out = out.slice(-100_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const proc: Proc = {
      name,
      child,
      output: () => out,
      exited,
      kill: async (signal = 'SIGTERM') => {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
        return exited;
      },
    };
    this.procs.push(proc);
    return proc;
  }

  /** The processes that have already exited, each with the end of what it said (for a test's failure message). */
  exited(): string[] {
    return this.procs
      .filter((p) => p.child.exitCode !== null || p.child.signalCode !== null)
      .map(
        (p) =>
          `${p.name} exited (${p.child.exitCode ?? p.child.signalCode}): ${p.output().trim().split('\n').slice(-5).join(' | ')}`,
      );
  }

  async stopAll(): Promise<void> {
    await Promise.all(
      this.procs.splice(0).map(async (p) => {
        const timer = setTimeout(() => p.child.kill('SIGKILL'), 5000);
        await p.kill('SIGTERM');
        clearTimeout(timer);
      }),
    );
  }
}
