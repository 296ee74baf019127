import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { injectPod, type PodLike } from '@mizzen/inject';
import { describe, expect, it } from 'vitest';
import {
  checkDockerfile,
  findRenderer,
  imagesOf,
  imageTable,
  type K8sObject,
  parseObjects,
  podSpecOf,
  REPO_ROOT,
} from '../src/index.js';

/**
 * What each image runs, run here as a plain process from the build output
 * (no Docker engine on this machine): the Dockerfile's ENTRYPOINT with the
 * arguments deploy/ gives the container. `--help` after them makes the
 * programs parse every flag strictly (an unknown or misspelt flag fails) and
 * exit without binding ports or needing the cluster's files.
 */

const table = imageTable();
const entrypoint = (image: string) => {
  const name = image.replace(/^.*mizzen\//, '').replace(/:.*$/, '');
  const report = checkDockerfile(table.get(name)!);
  return path.join(REPO_ROOT, report.entrypoint!);
};

/** Kubernetes expands $(VAR) in args from the container's env; these stand in for the downward API. */
const ENV: Record<string, string> = {
  POD_NAME: 'productpage-v1-7d9c8f6b5-x2k4q',
  POD_NAMESPACE: 'bookinfo',
  INSTANCE_IP: '10.244.0.12',
  SERVICE_ACCOUNT: 'bookinfo-productpage',
};
const expand = (args: string[]) =>
  args.map((a) => a.replace(/\$\(([A-Z_]+)\)/g, (_m, v: string) => ENV[v] ?? ''));

function run(file: string, args: string[]) {
  return spawnSync(process.execPath, [file, ...args], { encoding: 'utf8', timeout: 30_000, cwd: REPO_ROOT });
}

describe("each image's entrypoint, run from the build output as a process (no Docker engine here)", {
  timeout: 60_000,
}, () => {
  const kind = parseObjects(findRenderer().render(path.join(REPO_ROOT, 'deploy', 'overlays', 'kind')));
  const workloads = kind.filter((o: K8sObject) => imagesOf(o).some((i) => i.startsWith('mizzen/')));

  it('accepts the arguments deploy/ gives every control-plane container', () => {
    expect(workloads.map((w) => w.metadata.name).sort()).toEqual([
      'istio-citadel',
      'istio-egressgateway',
      'istio-ingressgateway',
      'istio-telemetry',
      'istiod',
    ]);
    for (const w of workloads) {
      for (const c of podSpecOf(w)!.containers! as { image: string; args?: string[] }[]) {
        const r = run(entrypoint(c.image), [...expand(c.args ?? []), '--help']);
        expect(r.stderr, `${w.metadata.name}: ${r.stderr}`).toBe('');
        expect(r.status, w.metadata.name).toBe(0);
        expect(r.stdout).toMatch(/^usage: /);
      }
    }
  });

  it('accepts the arguments the injector gives the sidecar and its iptables init step', () => {
    const bookinfo = fs.readFileSync(
      path.join(REPO_ROOT, 'deploy', 'samples', 'bookinfo', 'bookinfo.yaml'),
      'utf8',
    );
    const deployment = parseObjects(bookinfo).find(
      (o) => o.kind === 'Deployment' && o.metadata.name === 'productpage-v1',
    )!;
    const template = (deployment.spec as { template: PodLike }).template;
    const { pod } = injectPod(
      template,
      { proxyImage: 'mizzen/sidecar-agent:0.1.0' },
      { namespace: 'bookinfo' },
    );
    const sidecar = pod.spec!.containers!.find((c) => c.name === 'istio-proxy')!;
    const init = pod.spec!.initContainers!.find((c) => c.name === 'mizzen-init')!;
    const agent = entrypoint(sidecar.image!);
    const r = run(agent, [...expand(sidecar.args as string[]), '--help']);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    // The init step, without root: --dry-run prints the nat table it would install.
    const dry = run(agent, [...(init.args as string[]), '--dry-run']);
    expect(dry.stderr).toBe('');
    expect(dry.status).toBe(0);
    expect(dry.stdout).toContain('ISTIO_OUTPUT');
    expect(dry.stdout).toMatch(/--to-ports 15001/);
    expect(dry.stdout).toMatch(/--to-ports 15006/);
  });

  it('starts every Bookinfo service and stops it on SIGTERM', async () => {
    for (const app of ['productpage', 'details', 'reviews', 'ratings']) {
      const file = entrypoint(`mizzen/bookinfo-${app}:0.1.0`);
      const child = spawn(process.execPath, [file], {
        cwd: REPO_ROOT,
        env: { ...process.env, PORT: '0', HOST: '127.0.0.1', SERVICE_VERSION: 'v2', LOG_LEVEL: 'info' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      try {
        const listening = await new Promise<string>((resolve, reject) => {
          let out = '';
          const timer = setTimeout(() => reject(new Error(`${app} did not start: ${out}`)), 20_000);
          child.stdout.on('data', (d: Buffer) => {
            out += d.toString();
            const m = /listening at (http:\/\/[^"\s]+)/i.exec(out);
            if (m) {
              clearTimeout(timer);
              resolve(m[1]!);
            }
          });
          child.on('exit', (code) => reject(new Error(`${app} exited with ${code}: ${out}`)));
        });
        const res = await fetch(`${listening}/health`);
        expect(res.status, app).toBe(200);
      } finally {
        const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
        child.kill('SIGTERM');
        expect(await exited, `${app} exit code after SIGTERM`).toBe(0);
      }
    }
  }, 90_000);
});
