import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';

const here = path.dirname(fileURLToPath(import.meta.url));
const main = path.resolve(here, '..', 'dist', 'main.js');
const bookinfo = path.resolve(here, '..', '..', '..', 'deploy', 'samples', 'bookinfo', 'bookinfo.yaml');
const golden = path.join(here, 'golden', 'bookinfo-injected.yaml');

function mizzen(...args: string[]) {
  return spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout: 20_000 });
}

interface Doc {
  kind: string;
  metadata: { name: string };
  spec?: {
    template?: {
      metadata?: { annotations?: Record<string, string> };
      spec: { containers: { name: string }[]; initContainers?: { name: string }[] };
    };
  };
}

describe('mizzen kube-inject', { timeout: 60_000 }, () => {
  it('injects the Bookinfo sample offline as the webhook would (golden file)', () => {
    const r = mizzen('kube-inject', '-f', bookinfo);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    if (process.env.UPDATE_GOLDEN === '1' || !fs.existsSync(golden)) {
      fs.mkdirSync(path.dirname(golden), { recursive: true });
      fs.writeFileSync(golden, r.stdout);
    }
    expect(r.stdout).toBe(fs.readFileSync(golden, 'utf8'));
    const docs = parseAllDocuments(r.stdout).map((d) => d.toJS() as Doc);
    const deployments = docs.filter((d) => d.kind === 'Deployment');
    expect(deployments).toHaveLength(6);
    for (const d of deployments) {
      const pod = d.spec!.template!;
      expect(pod.spec.containers.map((c) => c.name)).toEqual([
        d.metadata.name.replace(/-v\d$/, ''),
        'istio-proxy',
      ]);
      expect(pod.spec.initContainers!.map((c) => c.name)).toEqual(['mizzen-init']);
      expect(pod.metadata!.annotations!['sidecar.istio.io/status']).toContain('istio-proxy');
    }
    // Services and ServiceAccounts pass through unchanged.
    expect(docs.filter((d) => d.kind === 'Service')).toHaveLength(4);
    expect(docs.filter((d) => d.kind === 'ServiceAccount')).toHaveLength(4);
  });

  it('is idempotent: injecting its own output changes nothing', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-inject-'));
    try {
      const once = mizzen('kube-inject', '-f', bookinfo).stdout;
      fs.writeFileSync(path.join(dir, 'once.yaml'), once);
      expect(mizzen('kube-inject', '-f', path.join(dir, 'once.yaml')).stdout).toBe(once);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('honours the opt-out annotation and says clearly what is wrong with its input', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-inject-'));
    try {
      const optOut = path.join(dir, 'opt-out.yaml');
      fs.writeFileSync(
        optOut,
        `apiVersion: v1
kind: Pod
metadata:
  name: legacy
  annotations: { sidecar.istio.io/inject: "false" }
spec:
  containers: [{ name: app, image: legacy:1 }]
`,
      );
      const r = mizzen('kube-inject', '-f', optOut);
      expect(r.status).toBe(0);
      expect(r.stdout).not.toContain('istio-proxy');
      const missing = mizzen('kube-inject', '-f', path.join(dir, 'nope.yaml'));
      expect(missing.status).toBe(1);
      expect(missing.stderr).toBe(`error: cannot read ${path.join(dir, 'nope.yaml')}: ENOENT\n`);
      const bad = path.join(dir, 'bad.yaml');
      fs.writeFileSync(bad, 'kind: [unclosed\n');
      const broken = mizzen('kube-inject', '-f', bad);
      expect(broken.status).toBe(1);
      expect(broken.stderr).toMatch(/^error: .*bad\.yaml: document 1: /);
      expect(mizzen('kube-inject').status).toBe(2);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
