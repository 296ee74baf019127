import { type ChildProcess, type SpawnSyncReturns, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PortAllocator } from '@mizzen/runtime';

const require = createRequire(import.meta.url);
export const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'main.js');
const pilotMain = path.join(path.dirname(require.resolve('@mizzen/pilot/package.json')), 'dist', 'main.js');

/** A real pilot process on free ports, reading a config directory, with a scratch MIZZEN_HOME. */
export interface PilotProcess {
  base: string;
  dir: string;
  /** Runs the built `mizzen` against this pilot. */
  mizzen: (...args: string[]) => SpawnSyncReturns<string>;
  stop: () => Promise<void>;
}

export async function startPilot(prefix: string, configFiles: Record<string, string>): Promise<PilotProcess> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const configDir = path.join(dir, 'config');
  fs.mkdirSync(configDir);
  for (const [name, text] of Object.entries(configFiles)) fs.writeFileSync(path.join(configDir, name), text);
  const [xdsPort, httpPort] = await new PortAllocator().takeMany(2);
  const base = `http://127.0.0.1:${httpPort}`;
  const pilot: ChildProcess = spawn(
    process.execPath,
    [
      pilotMain,
      ...['--host', '127.0.0.1', '--xds-port', String(xdsPort), '--http-port', String(httpPort)],
      ...['--config-dir', configDir, '--store', path.join(dir, 'store.json')],
      ...['--registrations', path.join(dir, 'registrations.json')],
      ...['--credentials-dir', path.join(dir, 'credentials')],
    ],
    { stdio: 'ignore', env: { ...process.env, MIZZEN_LOG_LEVEL: 'warn' } },
  );
  const stop = async () => {
    if (pilot.exitCode === null) {
      const exited = new Promise((r) => pilot.once('exit', r));
      pilot.kill('SIGTERM');
      await exited;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 30_000;
  for (;;) {
    const ready = await fetch(`${base}/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error('pilot did not become ready');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const mizzen = (...args: string[]) =>
    spawnSync(process.execPath, [main, ...args, '--pilot', base], {
      encoding: 'utf8',
      env: { ...process.env, MIZZEN_HOME: dir },
      timeout: 20_000,
    });
  return { base, dir, mizzen, stop };
}
