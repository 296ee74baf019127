#!/usr/bin/env node
// The `mizzen` command. In a source checkout it builds what it needs first
// (`npm ci && npx mizzen up` must just work on a fresh clone); Nx's cache makes
// that a no-op when nothing changed.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const cliRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const workspace = path.resolve(cliRoot, '..', '..');
const entry = path.join(cliRoot, 'dist', 'main.js');
const nx = nxEntry();
const command = process.argv[2];

/** Nx's CLI entry in a source checkout (absent in an installed package, where dist is prebuilt). */
function nxEntry() {
  try {
    const require = createRequire(path.join(workspace, 'package.json'));
    const pkgFile = require.resolve('nx/package.json');
    const bin = JSON.parse(fs.readFileSync(pkgFile, 'utf8')).bin;
    return path.join(path.dirname(pkgFile), typeof bin === 'string' ? bin : bin.nx);
  } catch {
    return undefined;
  }
}

function build() {
  process.stderr.write('building Mizzen (cached after the first run)…\n');
  const r = spawnSync(process.execPath, [nx, 'run', '@mizzen/cli:build', '--outputStyle=static'], {
    cwd: workspace,
    env: { ...process.env, NX_DAEMON: 'false', NX_NO_CLOUD: 'true', NX_TUI: 'false' },
    encoding: 'utf8',
  });
  if (r.status !== 0) {
    process.stderr.write(
      `${r.stdout ?? ''}${r.stderr ?? ''}\nerror: the build failed; see the output above\n`,
    );
    process.exit(1);
  }
}

if (nx && fs.existsSync(path.join(workspace, 'nx.json')) && (command === 'up' || !fs.existsSync(entry)))
  build();
await import(pathToFileURL(entry).href);
