import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';

const require = createRequire(import.meta.url);

/** The `mizzen` command as installed: the package's bin script (which runs the built dist). */
export const MIZZEN_BIN = path.join(
  path.dirname(require.resolve('@mizzen/cli/package.json')),
  'bin',
  'mizzen.js',
);

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `mizzen ARGS…` as a user would, asynchronously (the test's own
 * servers keep answering meanwhile), with an empty MIZZEN_HOME so no local
 * mesh's state file is picked up.
 */
export function runMizzen(args: string[], timeoutMs = 30_000): Promise<CliResult> {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-cli-home-'));
  const env: Record<string, string | undefined> = { ...process.env, MIZZEN_HOME: home };
  delete env.MIZZEN_PILOT;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [MIZZEN_BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (status) => {
      clearTimeout(timer);
      fs.rmSync(home, { recursive: true, force: true });
      resolve({ status, stdout, stderr });
    });
  });
}
