import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { createRootCa } from '@mizzen/pki';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeKubeApi } from './fake-kube-api.js';

const main = path.resolve(import.meta.dirname, '..', 'dist', 'main.js');

function pilot(...args: string[]) {
  return spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout: 20_000 });
}

/** A pilot process started as the Deployment starts it, against the fake API server. */
interface PilotProcess {
  child: ChildProcess;
  httpPort: number;
  webhookPort: number;
  output: () => string;
}

interface AdmissionResponse {
  response: { uid: string; allowed: boolean; patch?: string };
}

describe('the pilot process in Kubernetes mode, against a fake API server (no cluster runs here)', {
  timeout: 60_000,
}, () => {
  const api = new FakeKubeApi();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-kube-proc-'));
  const children: ChildProcess[] = [];
  let serverCa = '';
  let a: PilotProcess;
  let b: PilotProcess;

  /** A kubeconfig whose user's token names the replica, so the fake API server tells their writes apart. */
  function kubeconfig(token: string): string {
    const file = path.join(dir, `kubeconfig-${token}`);
    fs.writeFileSync(
      file,
      `apiVersion: v1
kind: Config
clusters:
  - name: fake
    cluster: { server: "${api.url}", insecure-skip-tls-verify: true }
users:
  - name: pilot
    user: { token: ${token} }
contexts:
  - name: fake
    context: { cluster: fake, user: pilot }
current-context: fake
`,
    );
    return file;
  }

  async function startPilot(pod: string): Promise<PilotProcess> {
    const child = spawn(
      process.execPath,
      [
        main,
        '--kubeconfig',
        kubeconfig(pod),
        '--host',
        '127.0.0.1',
        '--xds-port',
        '0',
        '--http-port',
        '0',
        '--store',
        path.join(dir, `${pod}-store.json`),
        '--root-cert',
        path.join(dir, 'root-cert.pem'),
        '--webhook-port',
        '0',
        '--webhook-cert',
        path.join(dir, 'tls.crt'),
        '--webhook-key',
        path.join(dir, 'tls.key'),
        // A short Lease, so a crashed leader is replaced within the test.
        '--leader-elect-lease-duration',
        '2s',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, POD_NAME: pod } },
    );
    children.push(child);
    let out = '';
    child.stderr!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const ready = await new Promise<{ httpPort: number; webhookPort: number }>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`pilot did not get ready: ${out}`)), 20_000);
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        for (const line of out.split('\n')) {
          if (!line.includes('"pilot ready"')) continue;
          clearTimeout(timer);
          resolve(JSON.parse(line) as { httpPort: number; webhookPort: number });
        }
      });
      child.once('exit', (code) => reject(new Error(`pilot exited with ${code}: ${out}`)));
    });
    return { child, ...ready, output: () => out };
  }

  async function kubez(p: PilotProcess): Promise<{ leader?: boolean; identity?: string }> {
    return (await (await fetch(`http://127.0.0.1:${p.httpPort}/debug/kubez`)).json()) as {
      leader?: boolean;
      identity?: string;
    };
  }

  async function until(
    what: string,
    check: () => boolean | Promise<boolean>,
    timeoutMs = 10_000,
  ): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** The API server's call to /inject for a Deployment's new pod in a namespace, over real HTTPS. */
  function admit(p: PilotProcess, namespace: string): Promise<AdmissionResponse> {
    const body = JSON.stringify({
      apiVersion: 'admission.k8s.io/v1',
      kind: 'AdmissionReview',
      request: {
        uid: `uid-${Date.now()}`,
        kind: { group: '', version: 'v1', kind: 'Pod' },
        resource: { group: '', version: 'v1', resource: 'pods' },
        namespace,
        operation: 'CREATE',
        object: {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { generateName: 'cart-6f7d8-', namespace, labels: { app: 'cart' } },
          spec: { containers: [{ name: 'cart', image: 'cart:1', ports: [{ containerPort: 8080 }] }] },
        },
      },
    });
    return new Promise((resolve, reject) => {
      const req = https.request(
        {
          host: '127.0.0.1',
          port: p.webhookPort,
          path: '/inject',
          method: 'POST',
          ca: serverCa,
          // The test certificate names no host; its chain is what is checked.
          checkServerIdentity: () => undefined,
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
          timeout: 5000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve(JSON.parse(Buffer.concat(chunks).toString()) as AdmissionResponse));
        },
      );
      req.on('error', reject);
      req.end(body);
    });
  }

  const injectedContainers = (r: AdmissionResponse) =>
    r.response.patch
      ? (JSON.parse(Buffer.from(r.response.patch, 'base64').toString()) as { path: string; value: unknown }[])
          .filter((op) => op.path.startsWith('/spec/containers'))
          .flatMap((op) => (Array.isArray(op.value) ? op.value : [op.value]) as { name: string }[])
          .map((c) => c.name)
      : [];

  const lease = () =>
    api.get('coordination.k8s.io/v1', 'Lease', 'istio-leader', 'istio-system')?.spec as
      | { holderIdentity?: string; leaseTransitions?: number }
      | undefined;

  beforeAll(async () => {
    await api.start();
    api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system' } });
    api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop' } });
    const ca = await createRootCa();
    serverCa = ca.certificate;
    fs.writeFileSync(path.join(dir, 'root-cert.pem'), ca.certificate);
    fs.writeFileSync(path.join(dir, 'tls.crt'), ca.certificate);
    fs.writeFileSync(path.join(dir, 'tls.key'), ca.privateKeyPem);
  });

  afterAll(async () => {
    for (const child of children) {
      if (child.exitCode !== null || child.signalCode !== null) continue;
      const exited = new Promise((r) => child.once('exit', r));
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
    const badLease = pilot('--kubeconfig', path.join(dir, 'nope'), '--leader-elect-lease-duration', '500ms');
    expect(badLease.stderr.split('\n')[0]).toBe(
      'pilot: --leader-elect-lease-duration must be whole seconds, at least 1s (a Lease counts seconds), got "500ms"',
    );
  }, 90_000);

  it('starts from --kubeconfig, serves webhooks and /debug/kubez, leads and writes the root cert', async () => {
    a = await startPilot('istiod-a');
    expect(a.webhookPort).toBeGreaterThan(0);
    await until('istiod-a to lead', async () => (await kubez(a)).leader === true);
    expect((await kubez(a)).identity).toMatch(/^istiod-a_\d+$/);
    await until(
      'the root cert in shop',
      () => api.get('v1', 'ConfigMap', 'istio-ca-root-cert', 'shop') !== undefined,
    );
    expect(api.get('v1', 'ConfigMap', 'istio-ca-root-cert', 'shop')?.data).toEqual({
      'root-cert.pem': fs.readFileSync(path.join(dir, 'root-cert.pem'), 'utf8'),
    });
  }, 40_000);

  it('injects by the namespace labels it watches: labelling shop istio-injection=enabled turns /inject on, disabled off', async () => {
    // shop has no injection label: the pod is admitted as it is.
    expect(await admit(a, 'shop')).toMatchObject({ response: { allowed: true } });
    expect(injectedContainers(await admit(a, 'shop'))).toEqual([]);
    const ns = api.get('v1', 'Namespace', 'shop')!;
    api.apply({ ...ns, metadata: { ...ns.metadata, labels: { 'istio-injection': 'enabled' } } });
    await until('injection in shop', async () =>
      injectedContainers(await admit(a, 'shop')).includes('istio-proxy'),
    );
    api.apply({ ...ns, metadata: { ...ns.metadata, labels: { 'istio-injection': 'disabled' } } });
    await until('no injection in shop', async () => injectedContainers(await admit(a, 'shop')).length === 0);
    // A revision label is followed the same way.
    api.apply({ ...ns, metadata: { ...ns.metadata, labels: { 'istio.io/rev': 'default' } } });
    await until('injection by istio.io/rev', async () =>
      injectedContainers(await admit(a, 'shop')).includes('istio-proxy'),
    );
  }, 40_000);

  it('replaces a crashed leader (SIGKILL, Lease not released) once its Lease expires', async () => {
    b = await startPilot('istiod-b');
    await until('istiod-b to sync', async () => (await kubez(b)).identity !== undefined);
    expect((await kubez(b)).leader).toBe(false);
    const holder = lease()!.holderIdentity!;
    expect(holder).toMatch(/^istiod-a_\d+$/);
    const transitions = lease()!.leaseTransitions ?? 0;
    const exited = new Promise((r) => a.child.once('exit', r));
    a.child.kill('SIGKILL');
    await exited;
    // Nothing released it: the record still names the dead replica ...
    expect(lease()!.holderIdentity).toBe(holder);
    // ... until it has gone unrenewed for a whole lease duration, as istiod-b sees it.
    await until('istiod-b to take over', async () => (await kubez(b)).leader === true, 20_000);
    expect(lease()).toMatchObject({
      holderIdentity: expect.stringMatching(/^istiod-b_\d+$/),
      leaseTransitions: transitions + 1,
    });
    // The new leader does the writes now: a new namespace gets its root cert from istiod-b.
    const writes = api.writes.length;
    api.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'late' } });
    await until(
      'the root cert in late',
      () => api.get('v1', 'ConfigMap', 'istio-ca-root-cert', 'late') !== undefined,
    );
    expect(
      api.writes
        .slice(writes)
        .filter((w) => w.kind === 'ConfigMap')
        .map((w) => w.token),
    ).toEqual(['istiod-b']);
  }, 60_000);

  it('stops on SIGTERM and releases the Lease for the next replica', async () => {
    const exited = new Promise<number | null>((r) => b.child.once('exit', (code) => r(code)));
    b.child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(lease()).toMatchObject({ holderIdentity: '' });
  }, 30_000);
});
