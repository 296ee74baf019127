import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { ComponentState } from './state.js';

export interface ChildSpec {
  name: string;
  kind: ComponentState['kind'];
  /** A Node entry point (`dist/main.js`). */
  entry: string;
  args: string[];
  env?: Record<string, string>;
  ports: Record<string, number>;
}

interface Running {
  spec: ChildSpec;
  child: ChildProcess;
  log: string;
  exited: Promise<number | null>;
}

/**
 * Starts the mesh's processes, sends each one's output to its own log file,
 * and stops them all — politely (SIGTERM), then firmly (SIGKILL) — so a
 * stopped mesh never leaves a process behind. Children also watch this
 * process (MIZZEN_PARENT_PID) and exit if it dies without stopping them.
 */
export class Supervisor {
  private readonly running: Running[] = [];
  private stopping = false;

  constructor(
    private readonly logDir: string,
    private readonly onUnexpectedExit: (name: string, code: number | null, log: string) => void,
  ) {
    fs.mkdirSync(logDir, { recursive: true });
  }

  start(spec: ChildSpec): Running {
    const log = path.join(this.logDir, `${spec.name}.log`);
    const fd = fs.openSync(log, 'w');
    const child = spawn(process.execPath, [spec.entry, ...spec.args], {
      env: { ...process.env, ...spec.env, MIZZEN_PARENT_PID: String(process.pid) },
      stdio: ['ignore', fd, fd],
    });
    fs.closeSync(fd);
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    void exited.then((code) => {
      if (!this.stopping) this.onUnexpectedExit(spec.name, code, log);
    });
    const entry = { spec, child, log, exited };
    this.running.push(entry);
    return entry;
  }

  components(): ComponentState[] {
    return this.running.map((r) => ({
      name: r.spec.name,
      kind: r.spec.kind,
      pid: r.child.pid ?? 0,
      ports: r.spec.ports,
      log: r.log,
    }));
  }

  /** Stops every child: SIGTERM, then SIGKILL after `graceMs`. Resolves when all have exited. */
  async stopAll(graceMs = 5000): Promise<void> {
    this.stopping = true;
    const alive = this.running.filter((r) => r.child.exitCode === null && r.child.signalCode === null);
    for (const r of alive) r.child.kill('SIGTERM');
    const timer = setTimeout(() => {
      for (const r of alive)
        if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill('SIGKILL');
    }, graceMs);
    await Promise.all(alive.map((r) => r.exited));
    clearTimeout(timer);
  }
}
