import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRootCa } from '@mizzen/pki';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeKubeApi } from './fake-kube-api.js';

const main = path.resolve(import.meta.dirname, '..', 'dist', 'main.js');

function pilot(...args: string[]) {
  return spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout: 20_000 });
}

describe('the pilot process in Kubernetes mode, against a fake API server (no cluster runs here)', {
  timeout: 60_000,
}, () => {
  const api = new FakeKubeApi();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-kube-proc-'));
  let child: ChildProcess | undefined;

  beforeAll(async () => {
    await api.start();
    api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system' } });
    api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
    const kubeconfig = `apiVersion: v1
kind: Config
clusters:
  - name: fake
    cluster: { server: "${api.url}", insecure-skip-tls-verify: true }
users:
  - name: pilot
    user: { token: process-test }
contexts:
  - name: fake
    context: { cluster: fake, user: pilot }
current-context: fake
`;
    fs.writeFileSync(path.join(dir, 'kubeconfig'), kubeconfig);
    const ca = await createRootCa();
    fs.writeFileSync(path.join(dir, 'root-cert.pem'), ca.certificate);
    fs.writeFileSync(path.join(dir, 'tls.crt'), ca.certificate);
    fs.writeFileSync(path.join(dir, 'tls.key'), ca.privateKeyPem);
  });

  afterAll(async () => {
    if (child && child.exitCode === null) {
      const exited = new Promise((r) => child!.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
    await api.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses Kubernetes and webhook flags that do not fit, in one sentence', () => {
    const noKube = pilot('--system-namespace', 'mesh-system');
    expect(noKube.status).toBe(2);
    expect(noKube.stderr.split('\n')[0]).toBe('pilot: --system-namespace needs --kubernetes or --kubeconfig');
    const half = pilot('--webhook-cert', 'x.crt');
    expect(half.stderr.split('\n')[0]).toBe('pilot: --webhook-cert and --webhook-key go together');
    const missing = pilot(
      '--webhook-cert',
      path.join(dir, 'nope.crt'),
      '--webhook-key',
      path.join(dir, 'tls.key'),
    );
    expect(missing.stderr.split('\n')[0]).toBe(
      `pilot: webhook certificate file ${path.join(dir, 'nope.crt')} does not exist`,
    );
    const badConfig = pilot('--kubeconfig', path.join(dir, 'nope'));
    expect(badConfig.status).toBe(2);
    expect(badConfig.stderr).toMatch(/^pilot: cannot load the Kubernetes config from .*nope: /);
  });

  it('starts from --kubeconfig, serves webhooks and /debug/kubez, writes the root cert, and stops on SIGTERM', async () => {
    child = spawn(
      process.execPath,
      [
        main,
        '--kubeconfig',
        path.join(dir, 'kubeconfig'),
        '--host',
        '127.0.0.1',
        '--xds-port',
        '0',
        '--http-port',
        '0',
        '--store',
        path.join(dir, 'store.json'),
        '--root-cert',
        path.join(dir, 'root-cert.pem'),
        '--webhook-port',
        '0',
        '--webhook-cert',
        path.join(dir, 'tls.crt'),
        '--webhook-key',
        path.join(dir, 'tls.key'),
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, POD_NAME: 'istiod-abc' } },
    );
    let out = '';
    const ready = await new Promise<{ httpPort: number; webhookPort: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`pilot did not get ready: ${out}`)), 20_000);
      child!.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        for (const line of out.split('\n')) {
          if (!line.includes('"pilot ready"')) continue;
          clearTimeout(timer);
          resolve(JSON.parse(line) as { httpPort: number; webhookPort: number });
        }
      });
      child!.once('exit', (code) => reject(new Error(`pilot exited with ${code}: ${out}`)));
    });
    expect(ready.webhookPort).toBeGreaterThan(0);
    const deadline = Date.now() + 10_000;
    let kubez: { leader?: boolean; identity?: string } = {};
    while (Date.now() < deadline && !kubez.leader) {
      kubez = (await (await fetch(`http://127.0.0.1:${ready.httpPort}/debug/kubez`)).json()) as typeof kubez;
      if (!kubez.leader) await new Promise((r) => setTimeout(r, 100));
    }
    expect(kubez.leader).toBe(true);
    expect(kubez.identity).toMatch(/^istiod-abc_\d+$/);
    while (Date.now() < deadline && !api.get('v1', 'ConfigMap', 'istio-ca-root-cert', 'shop')) {
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(api.get('v1', 'ConfigMap', 'istio-ca-root-cert', 'shop')?.data).toEqual({
      'root-cert.pem': fs.readFileSync(path.join(dir, 'root-cert.pem'), 'utf8'),
    });
    const exited = new Promise<number | null>((r) => child!.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
    // Stopping released the Lease for the next replica.
    expect(api.get('coordination.k8s.io/v1', 'Lease', 'istio-leader', 'istio-system')?.spec).toMatchObject({
      holderIdentity: '',
    });
  }, 40_000);
});
