import fs from 'node:fs';
import path from 'node:path';
import { crdsYaml } from './crds.js';
import { REPO_ROOT } from './render.js';

/**
 * Writes deploy/base/crds.yaml from libs/api's schemas; with --check, only
 * says whether the committed file is what the generator produces (exit 1 if not).
 */
const file = path.join(REPO_ROOT, 'deploy', 'base', 'crds.yaml');
const wanted = crdsYaml();
const current = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
if (process.argv.includes('--check')) {
  if (current !== wanted) {
    process.stderr.write(
      'deploy/base/crds.yaml is not what libs/api generates; run node tools/deploy-check/dist/generate-crds.js\n',
    );
    process.exitCode = 1;
  }
} else if (current !== wanted) {
  fs.writeFileSync(file, wanted);
  process.stdout.write(`wrote ${path.relative(process.cwd(), file)}\n`);
} else process.stdout.write('deploy/base/crds.yaml is up to date\n');
