import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const main = path.resolve(import.meta.dirname, '..', 'dist', 'main.js');

/**
 * The files pilot's flags name (`--mesh-config`, `--mesh-networks`), read
 * by the real process: a file that cannot be read or parsed is one line
 * naming the flag, the file and why, exit code 2, before anything starts.
 */
describe('pilot process: files named by flags', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-pilot-flags-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const run = (...args: string[]) => {
    const r = spawnSync(process.execPath, [main, '--xds-port', '0', '--http-port', '0', ...args], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    return { code: r.status, firstLine: r.stderr.split('\n')[0] };
  };

  it('a missing file: its name and ENOENT', () => {
    const missing = path.join(dir, 'missing.yaml');
    expect(run('--mesh-config', missing)).toEqual({
      code: 2,
      firstLine: `pilot: cannot read --mesh-config ${missing}: ENOENT`,
    });
    expect(run('--mesh-networks', missing)).toEqual({
      code: 2,
      firstLine: `pilot: cannot read --mesh-networks ${missing}: ENOENT`,
    });
  });

  it('a file that does not parse: the flag, the file and the field', () => {
    const networks = path.join(dir, 'networks.yaml');
    fs.writeFileSync(
      networks,
      'networks:\n  n1:\n    endpoints: [{ fromCidr: 10.0.0.0/8 }]\n    gateways: [{ address: 10.0.0.1, port: 70000 }]\n',
    );
    const r = run('--mesh-networks', networks);
    expect(r.code).toBe(2);
    expect(r.firstLine).toMatch(
      new RegExp(`^pilot: --mesh-networks ${networks}: .*networks\\.n1\\.gateways\\[0\\]\\.port`),
    );
  });
});
