import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);

/** The repository (workspace) root: apps/cli/dist → ../../.. */
export function workspaceRoot(): string {
  return path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');
}

/** The built entry point (`dist/main.js`) of a workspace app package. */
export function appEntry(pkg: string): string {
  return path.join(path.dirname(require.resolve(`${pkg}/package.json`)), 'dist', 'main.js');
}

/** The config `mizzen up` loads by default. */
export function defaultConfigDir(): string {
  return path.join(workspaceRoot(), 'deploy', 'local');
}

/** Where local state lives: the applied-config store, logs, and the running mesh's state file. */
export function mizzenHome(): string {
  return process.env.MIZZEN_HOME ? path.resolve(process.env.MIZZEN_HOME) : path.join(os.homedir(), '.mizzen');
}

export function stateFile(): string {
  return path.join(mizzenHome(), 'run', 'state.json');
}
