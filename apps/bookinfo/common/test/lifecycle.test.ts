import { type ChildProcess, spawn } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

/**
 * runService as a real process: the built package (`npm run build` comes
 * before `npm test`) started by a two-line main, signalled from here.
 */
const dist = pathToFileURL(
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'index.js'),
).href;
const MAIN = `
import { createService, listen, readServerConfig, runService } from '${dist}';
await runService('demo', async () => {
  const config = readServerConfig(process.env);
  return listen(createService({ name: 'demo', logLevel: config.logLevel }), config.listen);
});
`;

interface Child {
  proc: ChildProcess;
  stdout: string;
  stderr: string;
  exited: Promise<number | null>;
}

const children: ChildProcess[] = [];

function run(env: Record<string, string>, script = MAIN): Child {
  const proc = spawn(process.execPath, ['--input-type=module', '-e', script], {
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(proc);
  const child: Child = {
    proc,
    stdout: '',
    stderr: '',
    exited: new Promise((resolve) => proc.once('exit', (code) => resolve(code))),
  };
  proc.stdout?.on('data', (c: Buffer) => {
    child.stdout += c.toString();
  });
  proc.stderr?.on('data', (c: Buffer) => {
    child.stderr += c.toString();
  });
  return child;
}

/** Resolves with the URL once the service logs that it listens; rejects if it exits first. */
function listening(child: Child): Promise<string> {
  return new Promise((resolve, reject) => {
    const check = () => {
      const m = /Server listening at (http:\/\/[^"\s]+)/.exec(child.stdout);
      if (m) {
        child.proc.stdout?.off('data', check);
        resolve(m[1]!);
      }
    };
    child.proc.stdout?.on('data', check);
    child.exited.then((code) => reject(new Error(`exited ${code}: ${child.stderr}`)));
    check();
  });
}

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

describe('runService', () => {
  it('logs JSON with a component field, and exits 0 on SIGTERM and on SIGINT', async () => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const child = run({});
      const url = await listening(child);
      expect((await fetch(`${url}/nope`)).status).toBe(404);
      const line = JSON.parse(child.stdout.split('\n')[0]!) as { component: string; msg: string };
      expect(line.component).toBe('demo');
      child.proc.kill(signal);
      expect(await child.exited).toBe(0);
    }
  });

  it('exits 1 with one line on stderr when the port is taken', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    try {
      const port = (blocker.address() as net.AddressInfo).port;
      const child = run({ PORT: String(port) });
      expect(await child.exited).toBe(1);
      expect(child.stderr).toBe(`demo: cannot listen on 127.0.0.1:${port}: address already in use\n`);
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });

  it('exits 1 with one line on stderr for a bad environment', async () => {
    const child = run({ PORT: 'eighty' });
    expect(await child.exited).toBe(1);
    expect(child.stderr).toBe("demo: PORT must be a port number from 0 to 65535, got 'eighty'\n");
    const badParent = run({ MIZZEN_PARENT_PID: 'me' });
    expect(await badParent.exited).toBe(1);
    expect(badParent.stderr).toBe("demo: MIZZEN_PARENT_PID must be a process id, got 'me'\n");
  });

  it('stops by itself once the process named by MIZZEN_PARENT_PID is gone', async () => {
    const parent = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
    children.push(parent);
    const parentExited = new Promise((r) => parent.once('exit', r));
    const child = run({ MIZZEN_PARENT_PID: String(parent.pid) });
    await listening(child);
    parent.kill('SIGKILL');
    await parentExited;
    const stoppedAt = Date.now();
    expect(await child.exited).toBe(0);
    expect(Date.now() - stoppedAt).toBeLessThan(3000);
    expect(child.stdout).toContain(`parent process ${parent.pid} exited`);
  });
});
