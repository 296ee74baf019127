// Builds the native addon with node-gyp against the headers of the Node that
// runs this script (never downloading them), then copies it into dist/ so the
// package's build output is complete on its own (and Nx's cache of dist/
// restores it).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const prefix = path.resolve(path.dirname(process.execPath), '..');

function fail(message) {
  process.stderr.write(`@mizzen/original-dst: ${message}\n`);
  process.exit(1);
}

/** npm tells scripts where its node-gyp is; otherwise use the one npm ships next to this Node. */
function nodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(prefix, 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
    path.join(root, '..', '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  const found = candidates.find((c) => c && fs.existsSync(c));
  if (!found) fail(`node-gyp not found (looked in ${candidates.filter(Boolean).join(', ')})`);
  return found;
}

/** The headers of this Node, installed with it (Debian's nodejs and the official tarballs both ship them). */
function nodeDir() {
  const candidates = [process.env.npm_config_nodedir, prefix].filter(Boolean);
  const found = candidates.find((d) => fs.existsSync(path.join(d, 'include', 'node', 'node_api.h')));
  if (!found)
    fail(
      `Node's headers (include/node/node_api.h) not found under ${candidates.join(' or ')}; ` +
        'install the Node development headers so node-gyp need not download them',
    );
  return found;
}

const gyp = nodeGyp();
const args = [gyp, 'rebuild', `--nodedir=${nodeDir()}`, '--loglevel=warn'];
const run = spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
if (run.error) fail(`could not run node-gyp: ${run.error.message}`);
if (run.status !== 0) fail(`node-gyp rebuild failed (exit ${run.status}); see the compiler output above`);

const built = path.join(root, 'build', 'Release', 'original_dst.node');
if (!fs.existsSync(built)) fail(`node-gyp finished but ${built} is missing`);
fs.mkdirSync(path.join(root, 'dist'), { recursive: true });
fs.copyFileSync(built, path.join(root, 'dist', 'original_dst.node'));
