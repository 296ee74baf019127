import { type ChildProcess, spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

/** `node dist/main.js` as `mizzen up` starts it (the build comes before the tests). */
const MAIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'main.js');

const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

function start(env: Record<string, string>) {
  const proc = spawn(process.execPath, [MAIN], {
    cwd: os.tmpdir(),
    env: { PATH: process.env.PATH ?? '', NO_PROXY: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(proc);
  let stdout = '';
  let stderr = '';
  proc.stdout?.on('data', (c: Buffer) => {
    stdout += c.toString();
  });
  proc.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const listening = new Promise<string>((resolve, reject) => {
    proc.stdout?.on('data', () => {
      const m = /Server listening at (http:\/\/[^"\s]+)/.exec(stdout);
      if (m) resolve(m[1]!);
    });
    void exited.then((code) => reject(new Error(`exited ${code}: ${stderr}`)));
  });
  return { proc, exited, listening, stderr: () => stderr };
}

describe('node dist/main.js', () => {
  it('listens on HOST:PORT (0 for any free port), serves its stylesheet whatever the cwd, and stops on SIGTERM', async () => {
    const app = start({
      HOST: '127.0.0.1',
      PORT: '0',
      HTTP_PROXY: 'http://127.0.0.1:9',
      SERVICE_VERSION: 'v1',
    });
    const url = await app.listening;
    expect(await (await fetch(`${url}/health`)).json()).toEqual({ status: 'Productpage is healthy' });
    expect((await fetch(`${url}/static/bookinfo.css`)).status).toBe(200);
    // Its proxy (port 9) refuses connections: the page still renders, with the apologies.
    const html = await (await fetch(`${url}/productpage`)).text();
    expect(html).toContain('Sorry, product reviews are currently unavailable for this book.');
    app.proc.kill('SIGTERM');
    expect(await app.exited).toBe(0);
  });

  it('exits 1 with one line on stderr for a bad PORT', async () => {
    const app = start({ PORT: '99999' });
    app.listening.catch(() => undefined);
    expect(await app.exited).toBe(1);
    expect(app.stderr()).toBe("productpage: PORT must be a port number from 0 to 65535, got '99999'\n");
  });
});
