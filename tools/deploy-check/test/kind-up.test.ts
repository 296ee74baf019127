import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appDockerfiles, findRenderer, imagesOf, parseObjects, REPO_ROOT } from '../src/index.js';

/**
 * tools/kind-up.sh driven end to end with FAKE docker, kind, kubectl, curl
 * and sleep on PATH (no Docker engine or cluster runs here): each fake logs
 * its arguments and answers as the real tool would at that step, so the test
 * sees the order of the steps and what the script does when cainjector never
 * fills a webhook's caBundle. What the real tools then do only a real kind
 * cluster shows (see the README's Kubernetes section).
 */

const FAKE = `#!/usr/bin/env node
const fs = require('node:fs');
const path = require('node:path');
const tool = path.basename(process.argv[1]);
const args = process.argv.slice(2);
const line = [tool, ...args].join(' ');
fs.appendFileSync(process.env.FAKE_LOG, line + '\\n');
const count = (what) => {
  const file = process.env.FAKE_LOG + '.' + what;
  const n = (fs.existsSync(file) ? Number(fs.readFileSync(file, 'utf8')) : 0) + 1;
  fs.writeFileSync(file, String(n));
  return n;
};
if (tool === 'sleep') process.exit(0);
if (tool === 'kind' && args[0] === 'get') process.exit(0); // no clusters yet
if (tool === 'kubectl' && args[0] === 'get' && /webhookconfiguration$/.test(args[1])) {
  const jsonpath = args.find((a) => a.startsWith('jsonpath='));
  const hooks = args[1].startsWith('mutating') ? ['sidecar-injector.istio.io'] : ['rev.validation.istio.io'];
  if (jsonpath.includes('caBundle')) {
    const after = process.env.FAKE_CA_BUNDLE_AFTER;
    const filled = after !== 'never' && count(args[2]) > Number(after);
    process.stdout.write(hooks.map(() => (filled ? 'LS0tLS1CRUdJTg==' : '') + '\\n').join(''));
  } else process.stdout.write(hooks.map((h) => h + '\\n').join(''));
  process.exit(0);
}
if (tool === 'kubectl' && args.includes('secret')) {
  process.stdout.write(Buffer.from('-----BEGIN CERTIFICATE-----\\nroot\\n-----END CERTIFICATE-----\\n').toString('base64'));
}
process.exit(0);
`;

interface Run {
  status: number | null;
  stderr: string;
  log: string[];
}

describe('tools/kind-up.sh against FAKE docker, kind, kubectl and curl (no Docker engine or cluster here)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-kind-up-'));
  const bin = path.join(dir, 'bin');
  let version = '';
  let kindImages: string[] = [];

  beforeAll(() => {
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, 'fake'), FAKE, { mode: 0o755 });
    for (const tool of ['docker', 'kind', 'kubectl', 'curl', 'sleep'])
      fs.symlinkSync(path.join(bin, 'fake'), path.join(bin, tool));
    version = (
      JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }
    ).version;
    const kind = parseObjects(findRenderer().render(path.join(REPO_ROOT, 'deploy', 'overlays', 'kind')));
    kindImages = [...new Set(kind.flatMap(imagesOf))];
  }, 60_000);

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  function up(caBundleAfter: string, name: string): Run {
    const log = path.join(dir, `${name}.log`);
    const r = spawnSync(path.join(REPO_ROOT, 'tools', 'kind-up.sh'), [], {
      encoding: 'utf8',
      timeout: 60_000,
      env: {
        PATH: `${bin}:${process.env.PATH}`,
        HOME: dir,
        FAKE_LOG: log,
        FAKE_CA_BUNDLE_AFTER: caBundleAfter,
      },
    });
    return { status: r.status, stderr: r.stderr, log: fs.readFileSync(log, 'utf8').trim().split('\n') };
  }

  it('creates the cluster, installs cert-manager, loads every image, waits for the caBundle before Bookinfo, and smoke-tests HTTP and HTTPS', () => {
    const run = up('2', 'ok');
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const at = (re: RegExp) => {
      const i = run.log.findIndex((l) => re.test(l));
      expect(i, `no step matching ${re}`).toBeGreaterThanOrEqual(0);
      return i;
    };
    const order = [
      at(/^kind create cluster --name mizzen --config tools\/kind\/kind-config\.yaml/),
      at(
        /^kubectl apply -f https:\/\/github\.com\/cert-manager\/cert-manager\/releases\/download\/v[\d.]+\/cert-manager\.yaml$/,
      ),
      at(/^kubectl -n cert-manager rollout status deploy\/cert-manager-cainjector/),
      at(/^docker build -f apps\/pilot\/Dockerfile/),
      at(/^kubectl apply -k deploy\/overlays\/kind/),
      at(/^kubectl -n istio-system wait --for=condition=Ready certificate --all/),
      at(/^kubectl get mutatingwebhookconfiguration istio-sidecar-injector .*caBundle/),
      at(/^kubectl get validatingwebhookconfiguration istiod-istio-system .*caBundle/),
      at(/^kubectl -n istio-system rollout status deploy\/istiod/),
      at(/^kubectl apply -k deploy\/samples\/bookinfo$/),
      at(/^kubectl -n bookinfo rollout status deploy\/productpage-v1/),
      at(/^curl .*http:\/\/localhost:30080\/productpage$/),
      at(/^curl .*--cacert \S+ https:\/\/localhost:30443\/productpage$/),
    ];
    expect(order).toEqual([...order].sort((a, b) => a - b));
    // The caBundle was asked for until cainjector had filled it (the third answer), before Bookinfo.
    expect(run.log.filter((l) => /mutatingwebhookconfiguration .*caBundle/.test(l))).toHaveLength(3);
    // Every image: each app's, built and loaded with the version tag, and every other image the overlay runs.
    const loads = run.log.filter((l) => l.startsWith('kind load docker-image '));
    for (const name of appDockerfiles().keys()) {
      expect(run.log).toContain(
        `docker build -f ${appDockerfiles().get(name)} -t mizzen/${name}:${version} .`,
      );
      expect(loads).toContain(`kind load docker-image mizzen/${name}:${version} --name mizzen`);
    }
    for (const image of kindImages)
      expect(
        loads.some((l) => l.startsWith(`kind load docker-image ${image} `)),
        image,
      ).toBe(true);
    // Every Deployment of the control plane and of Bookinfo waited for.
    for (const d of [
      'istiod',
      'istio-citadel',
      'istio-ingressgateway',
      'istio-egressgateway',
      'istio-telemetry',
    ])
      expect(run.log).toContain(`kubectl -n istio-system rollout status deploy/${d} --timeout=180s`);
    for (const d of ['details-v1', 'ratings-v1', 'reviews-v1', 'reviews-v2', 'reviews-v3', 'productpage-v1'])
      expect(run.log).toContain(`kubectl -n bookinfo rollout status deploy/${d} --timeout=240s`);
  }, 90_000);

  it('stops with one sentence, before Bookinfo, when cainjector never fills the caBundle', () => {
    const run = up('never', 'never');
    expect(run.status).toBe(1);
    expect(run.stderr.trim()).toBe(
      'up.sh: cainjector did not fill the caBundle of mutatingwebhookconfiguration/istio-sidecar-injector (kubectl -n cert-manager logs deploy/cert-manager-cainjector)',
    );
    expect(run.log.some((l) => l.includes('deploy/samples/bookinfo'))).toBe(false);
  }, 90_000);
});
