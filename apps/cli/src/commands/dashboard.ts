import { spawn, spawnSync } from 'node:child_process';
import { CliError } from '../errors.js';
import { readState } from '../local/state.js';

/** Whether a command exists on PATH (without running it). */
function onPath(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' }).status === 0;
}

/**
 * `mizzen dashboard`: prints the running mesh's dashboard URL (the telemetry
 * collector's) and opens it with xdg-open when there is one. `--url` (or
 * MIZZEN_DASHBOARD) names another collector.
 */
export function dashboard(opts: { url?: string; open?: boolean }, out: NodeJS.WritableStream): void {
  const url = opts.url ?? process.env.MIZZEN_DASHBOARD ?? readState()?.dashboard;
  if (!url)
    throw new CliError(
      'no running mesh with a dashboard found; start one with `mizzen up` or pass --url URL',
    );
  out.write(`${url}\n`);
  if (opts.open === false || !onPath('xdg-open')) return;
  const child = spawn('xdg-open', [url], { stdio: 'ignore', detached: true });
  child.on('error', () => {});
  child.unref();
}
