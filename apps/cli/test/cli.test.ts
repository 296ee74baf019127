import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { resourceRef } from '../src/commands/apply.js';
import { readInputs } from '../src/commands/files.js';
import { CliError } from '../src/errors.js';
import { age, formatTable } from '../src/output/table.js';

const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'main.js');
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-cli-'));

/** The CLI as a user runs it, with no mesh running (MIZZEN_HOME empty). */
function mizzen(...args: string[]) {
  const env = { ...process.env, MIZZEN_HOME: home } as Record<string, string | undefined>;
  delete env.MIZZEN_PILOT;
  return spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', env, timeout: 20_000 });
}

describe('mizzen command line', () => {
  it('prints help, and says in one sentence when pilot cannot be reached', () => {
    expect(mizzen('help').stdout).toContain('mizzen up');
    for (const args of [
      ['get', 'vs'],
      ['status'],
      ['apply', '-f', path.join(home)],
      ['ps'],
      ['pc', 'clusters', 'reviews-v1'],
    ]) {
      fs.writeFileSync(path.join(home, 'x.yaml'), 'kind: VirtualService');
      const r = mizzen(...args, '--pilot', 'http://127.0.0.1:9');
      expect(r.status, args.join(' ')).toBe(1);
      expect(r.stderr.trim()).toBe(
        'error: cannot reach pilot at http://127.0.0.1:9 (connection refused); is the mesh running? Start it with `npx mizzen up`.',
      );
    }
  });

  it('rejects unknown commands, flags and kinds with exit code 2 and no stack trace', () => {
    const unknown = mizzen('frobnicate');
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toBe('error: unknown command "frobnicate"; run `mizzen help`\n');
    const flag = mizzen('get', 'vs', '--colour');
    expect(flag.status).toBe(2);
    expect(flag.stderr).toMatch(/^error: get: Unknown option '--colour'/);
    const kind = mizzen('get', 'pods', '--pilot', 'http://127.0.0.1:9');
    expect(kind.status).toBe(1);
    expect(kind.stderr).toBe('error: the server doesn\'t have a resource type "pods"\n');
    const noFile = mizzen('apply');
    expect(noFile.status).toBe(2);
    expect(noFile.stderr).toContain('no input: pass -f FILE');
  });

  it('reads -f inputs like kubectl: files, directories of YAML, and names missing files', () => {
    const dir = fs.mkdtempSync(path.join(home, 'in-'));
    fs.writeFileSync(path.join(dir, 'b.yaml'), 'b');
    fs.writeFileSync(path.join(dir, 'a.yml'), 'a');
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'ignored');
    expect(readInputs([dir]).map((i) => path.basename(i.source))).toEqual(['a.yml', 'b.yaml']);
    expect(() => readInputs([path.join(dir, 'missing.yaml')])).toThrow(CliError);
    expect(() => readInputs([path.join(dir, 'missing.yaml')])).toThrow(
      /missing\.yaml: no such file or directory/,
    );
  });

  it('formats kubectl-style tables and references', () => {
    expect(
      formatTable(
        ['NAME', 'HOSTS'],
        [
          ['reviews', 'reviews'],
          ['ratings-long', undefined],
        ],
      ),
    ).toBe('NAME           HOSTS\nreviews        reviews\nratings-long   <none>');
    expect(resourceRef('VirtualService', 'reviews')).toBe('virtualservice.networking.istio.io/reviews');
    expect(resourceRef('AuthorizationPolicy', 'deny')).toBe('authorizationpolicy.security.istio.io/deny');
    const now = Date.parse('2026-01-01T01:00:00Z');
    expect(age('2026-01-01T00:59:30Z', now)).toBe('30s');
    expect(age('2026-01-01T00:30:00Z', now)).toBe('30m');
  });
});
