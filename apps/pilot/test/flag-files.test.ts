import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const main = path.resolve(import.meta.dirname, '..', 'dist', 'main.js');

function pilot(args: string[]) {
  return spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout: 20_000 });
}

/** The command line itself, checked by the real process before it loads the rest of pilot. */
describe('pilot process: bad flags', () => {
  it('a bad flag: one line naming it, then the usage, exit code 2', () => {
    const cases: [string[], string][] = [
      [['--bogus'], "pilot: Unknown option '--bogus'"],
      [['--xds-port'], "pilot: Option '--xds-port <value>' argument missing"],
      [['--xds-port', 'x'], 'pilot: --xds-port must be a port number (0-65535), got "x"'],
      [['--root-cert-refresh', '1s'], 'pilot: --root-cert-refresh needs --root-cert or --citadel-url'],
    ];
    for (const [args, message] of cases) {
      const r = pilot(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr.split('\n').slice(0, 2)).toEqual([message, expect.stringMatching(/^usage: pilot /)]);
    }
  });

  it('a value only a parser can judge (a duration) is named as well', () => {
    const r = pilot(['--root-cert', 'ca.pem', '--root-cert-refresh', 'soon']);
    expect(r.status).toBe(2);
    expect(r.stderr.split('\n')[0]).toMatch(/^pilot: --root-cert-refresh: invalid duration "soon"/);
  });

  it('--help prints the usage on stdout, exit code 0', () => {
    const r = pilot(['--help']);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/^usage: pilot /);
    expect(r.stderr).toBe('');
  });
});

/**
 * The files pilot's flags name (`--mesh-config`, `--mesh-networks`), read
 * by the real process: a file that cannot be read or parsed is one line
 * naming the flag, the file and why, exit code 2, before anything starts.
 */
describe('pilot process: files named by flags', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-pilot-flags-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  const run = (...args: string[]) => {
    const r = pilot(['--xds-port', '0', '--http-port', '0', ...args]);
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
