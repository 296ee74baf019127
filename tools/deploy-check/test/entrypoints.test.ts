import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { injectPod, type PodLike } from '@mizzen/inject';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The fake API server pilot's own Kubernetes tests use (apps/pilot/test), here serving HTTPS at the in-cluster address.
import { FakeKubeApi } from '../../../apps/pilot/test/fake-kube-api.js';
import {
  type ContainerSpec,
  checkDockerfile,
  findRenderer,
  imageTable,
  type K8sObject,
  KUBERNETES_SERVICE_IP,
  NODE_IP,
  type Pod,
  PodSandbox,
  type Probe,
  parseObjects,
  podSpecOf,
  REPO_ROOT,
  type RunningContainer,
} from '../src/index.js';

/**
 * What each image runs, run here without a container runtime (none on this
 * machine): every pod of the kind overlay, and an injected Bookinfo pod, as
 * kubelet would run them — the image's ENTRYPOINT with the exact args, env
 * (downward API filled in) and volumes (secrets, ConfigMaps, projected
 * tokens, emptyDirs at their mountPaths) deploy/ and the injector give each
 * container, the pod's uid and gid, capabilities dropped, a read-only root
 * filesystem — in a pod network namespace reached from a node namespace,
 * where the probes come from (PodSandbox). Standing in for the cluster: the
 * fake API server at 10.96.0.1:443 over TLS, certificates made with openssl
 * where cert-manager would issue them, the pods' /etc/hosts where cluster DNS
 * would answer, the host's programs (/usr) and the workspace at /app where
 * the images have theirs, and the host's redis-server for the redis image.
 */

type Json = Record<string, unknown>;

interface Container {
  name: string;
  image?: string;
  command?: string[];
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: Json }[];
  ports?: { name?: string; containerPort: number }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  resources?: { limits?: { cpu?: string } };
  securityContext?: {
    runAsUser?: number;
    runAsGroup?: number;
    readOnlyRootFilesystem?: boolean;
    capabilities?: { add?: string[] };
  };
}

interface PodSpec {
  serviceAccountName?: string;
  automountServiceAccountToken?: boolean;
  securityContext?: { runAsUser?: number; runAsGroup?: number };
  initContainers?: Container[];
  containers: Container[];
  volumes?: Json[];
}

const table = imageTable();

function openssl(dir: string, args: string[]): void {
  const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${r.stderr}`);
}

/** A CA, or a certificate it signs (EC P-256, two days), in PEM: what cert-manager would write into a secret. */
class Certificates {
  constructor(private readonly dir: string) {}

  ca(name: string, cn: string): { cert: string; key: string } {
    openssl(this.dir, [
      ...['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
      ...[
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.crt`,
        '-days',
        '2',
        '-subj',
        `/O=cluster.local/CN=${cn}`,
      ],
      ...['-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'],
    ]);
    return this.read(name);
  }

  issue(name: string, cn: string, issuer: string, ext: string): { cert: string; key: string } {
    fs.writeFileSync(path.join(this.dir, `${name}.ext`), `${ext}\n`);
    openssl(this.dir, [
      ...['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'],
      ...['-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/O=cluster.local/CN=${cn}`],
    ]);
    openssl(this.dir, [
      ...['x509', '-req', '-in', `${name}.csr`, '-CA', `${issuer}.crt`, '-CAkey', `${issuer}.key`],
      ...['-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`],
    ]);
    return this.read(name);
  }

  private read(name: string) {
    return {
      cert: fs.readFileSync(path.join(this.dir, `${name}.crt`), 'utf8'),
      key: fs.readFileSync(path.join(this.dir, `${name}.key`), 'utf8'),
    };
  }
}

/** Kubernetes' $(VAR) expansion in env values, args and commands. */
const expand = (s: string, env: Record<string, string>) =>
  s.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string) => env[v] ?? m);

describe('every pod of the kind overlay and an injected Bookinfo pod, run as kubelet would run them in network and mount namespaces (no container runtime or cluster here; needs root)', () => {
  const sandbox = new PodSandbox('mzpod');
  const api: { server?: FakeKubeApi } = {};
  const secrets: Record<string, Record<string, string>> = {};
  const configMaps: Record<string, Record<string, string>> = {};
  const running: { pod: Pod; spec: PodSpec; containers: Map<string, RunningContainer> }[] = [];
  const hosts: Record<string, string> = {};
  let clusterCa = '';
  let kind: K8sObject[] = [];

  /** Files of the volumes a pod spec declares, plus the service-account token kubelet mounts. */
  function volumes(pod: Pod, spec: PodSpec, labels: Record<string, string>): Map<string, string> {
    const sa = spec.serviceAccountName ?? 'default';
    const dirs = new Map<string, string>();
    const pick = (data: Record<string, string>, items?: { key: string; path: string }[]) =>
      items ? Object.fromEntries(items.map((i) => [i.path, data[i.key] ?? ''])) : data;
    for (const v of spec.volumes ?? []) {
      const name = v.name as string;
      const secret = v.secret as {
        secretName: string;
        items?: { key: string; path: string }[];
        optional?: boolean;
      };
      const configMap = v.configMap as { name: string; items?: { key: string; path: string }[] };
      const projected = v.projected as { sources: Json[] } | undefined;
      let files: Record<string, string> = {};
      if (secret) {
        const data = secrets[secret.secretName];
        if (!data && !secret.optional)
          throw new Error(`${pod.name}: secret ${secret.secretName} is not provided`);
        files = pick(data ?? {}, secret.items);
      } else if (configMap) {
        const data = configMaps[configMap.name];
        if (!data) throw new Error(`${pod.name}: ConfigMap ${configMap.name} is not provided`);
        files = pick(data, configMap.items);
      } else if (projected) {
        for (const source of projected.sources) {
          const token = source.serviceAccountToken as { audience?: string; path: string } | undefined;
          if (token) files[token.path] = `token-${pod.namespace}-${sa}-${token.audience ?? 'api'}`;
        }
      } else if (v.downwardAPI) {
        files = {
          labels: Object.entries(labels)
            .map(([k, val]) => `${k}="${val}"\n`)
            .join(''),
          annotations: '',
        };
      }
      dirs.set(name, sandbox.volume(pod, name, files));
    }
    if (spec.automountServiceAccountToken !== false) {
      dirs.set(
        'kube-api-access',
        sandbox.volume(pod, 'kube-api-access', {
          token: `token-${pod.namespace}-${sa}-api`,
          'ca.crt': clusterCa,
          namespace: pod.namespace,
        }),
      );
    }
    return dirs;
  }

  /** A container of a pod as kubelet starts it: image entrypoint and user, the manifest's args, env, mounts. */
  function containerSpec(pod: Pod, spec: PodSpec, c: Container, dirs: Map<string, string>): ContainerSpec {
    const name = (c.image ?? '').replace(/^.*mizzen\//, '').replace(/:.*$/, '');
    const ours = (c.image ?? '').includes('mizzen/');
    const image = ours ? checkDockerfile(table.get(name)!) : undefined;
    const env: Record<string, string> = {
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      ...(image?.env ?? {}),
      KUBERNETES_SERVICE_HOST: KUBERNETES_SERVICE_IP,
      KUBERNETES_SERVICE_PORT: '443',
      KUBERNETES_SERVICE_PORT_HTTPS: '443',
    };
    const fields: Record<string, string> = {
      'metadata.name': pod.name,
      'metadata.namespace': pod.namespace,
      'status.podIP': pod.ip,
      'status.hostIP': NODE_IP,
      'spec.serviceAccountName': spec.serviceAccountName ?? 'default',
      'spec.nodeName': 'sandbox-node',
    };
    for (const e of c.env ?? []) {
      const fieldRef = (e.valueFrom?.fieldRef as { fieldPath: string } | undefined)?.fieldPath;
      const resource = (e.valueFrom?.resourceFieldRef as { resource: string } | undefined)?.resource;
      if (e.value !== undefined) env[e.name] = expand(e.value, env);
      else if (fieldRef) env[e.name] = fields[fieldRef] ?? '';
      else if (resource === 'limits.cpu')
        env[e.name] = String(Math.ceil(Number.parseFloat(c.resources?.limits?.cpu ?? '1')));
    }
    const command = [
      ...(c.command ??
        (ours
          ? ['node', image!.entrypoint!]
          : [name.replace(/^.*\//, '') === 'redis' ? 'redis-server' : name])),
      ...(c.args ?? []),
    ].map((a) => expand(a, env));
    const uid = c.securityContext?.runAsUser ?? spec.securityContext?.runAsUser ?? image?.user?.uid ?? 0;
    const gid = c.securityContext?.runAsGroup ?? spec.securityContext?.runAsGroup ?? image?.user?.gid ?? uid;
    const mounts = (c.volumeMounts ?? []).map((m) => ({
      path: m.mountPath,
      source: dirs.get(m.name)!,
      readOnly: m.readOnly === true,
    }));
    if (dirs.has('kube-api-access'))
      mounts.push({
        path: '/var/run/secrets/kubernetes.io/serviceaccount',
        source: dirs.get('kube-api-access')!,
        readOnly: true,
      });
    return {
      name: c.name,
      command,
      env,
      workingDir: image?.workingDir ?? '/data',
      uid,
      gid,
      ...(uid === 0 ? { capabilities: c.securityContext?.capabilities?.add ?? [] } : {}),
      readOnlyRoot: c.securityContext?.readOnlyRootFilesystem === true,
      mounts,
      hosts: { ...hosts, [pod.name]: pod.ip },
    };
  }

  function startPod(pod: Pod, spec: PodSpec, labels: Record<string, string>): Map<string, RunningContainer> {
    const dirs = volumes(pod, spec, labels);
    const containers = new Map<string, RunningContainer>();
    for (const c of spec.containers)
      containers.set(c.name, sandbox.run(pod, containerSpec(pod, spec, c, dirs)));
    running.push({ pod, spec, containers });
    return containers;
  }

  /** Polls a probe as kubelet would until it passes (bounded), or fails with the container's output. */
  async function until(
    pod: Pod,
    c: Container,
    which: 'readinessProbe' | 'livenessProbe',
    timeoutMs = 60_000,
  ) {
    const probe = c[which];
    if (!probe) return;
    const ports = Object.fromEntries(
      (c.ports ?? []).filter((p) => p.name).map((p) => [p.name!, p.containerPort]),
    );
    const deadline = Date.now() + timeoutMs;
    while (!sandbox.probe(pod, probe, ports)) {
      const entry = running.find((r) => r.pod === pod);
      const output = [...(entry?.containers.values() ?? [])]
        .map((r) => `--- ${r.name}\n${r.output()}`)
        .join('\n');
      if (Date.now() > deadline)
        throw new Error(`${pod.name}/${c.name}: ${which} ${JSON.stringify(probe)} never passed\n${output}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  beforeAll(async () => {
    PodSandbox.requirements();
    sandbox.removeStale();
    sandbox.start();
    kind = parseObjects(findRenderer().render(path.join(REPO_ROOT, 'deploy', 'overlays', 'kind')));

    // What cert-manager issues (deploy/components/cert-manager), and the cluster's own CA for the API server.
    const certs = new Certificates(fs.mkdtempSync(path.join(os.tmpdir(), 'mzpod-certs-')));
    const cluster = certs.ca('cluster-ca', 'kubernetes');
    clusterCa = cluster.cert;
    const apiCert = certs.issue(
      'apiserver',
      'kube-apiserver',
      'cluster-ca',
      `subjectAltName=IP:${KUBERNETES_SERVICE_IP},DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth`,
    );
    const root = certs.ca('mizzen-root-ca', 'Mizzen Root CA');
    const intermediate = certs.issue(
      'cacerts',
      'Mizzen Intermediate CA',
      'mizzen-root-ca',
      'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign,digitalSignature',
    );
    const webhook = certs.issue(
      'istiod-webhook',
      'istiod.istio-system.svc',
      'mizzen-root-ca',
      'subjectAltName=DNS:istiod.istio-system.svc,DNS:istiod.istio-system.svc.cluster.local\nextendedKeyUsage=serverAuth',
    );
    secrets.cacerts = { 'tls.crt': intermediate.cert, 'tls.key': intermediate.key, 'ca.crt': root.cert };
    secrets['istiod-webhook-tls'] = { 'tls.crt': webhook.cert, 'tls.key': webhook.key, 'ca.crt': root.cert };
    for (const cm of kind.filter((o) => o.kind === 'ConfigMap'))
      configMaps[cm.metadata.name] = (cm.data as Record<string, string>) ?? {};

    const server = new FakeKubeApi({ tls: { cert: apiCert.cert + cluster.cert, key: apiCert.key } });
    await server.start(await sandbox.listen(KUBERNETES_SERVICE_IP, 443));
    api.server = server;
    for (const ns of ['istio-system', 'bookinfo'])
      server.apply({
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: ns, ...(ns === 'bookinfo' ? { labels: { 'istio-injection': 'enabled' } } : {}) },
      });
    // The injected sidecar's projected token (audience istio-ca), as the TokenReview API knows it.
    server.tokens.set('token-bookinfo-bookinfo-productpage-istio-ca', {
      namespace: 'bookinfo',
      serviceAccount: 'bookinfo-productpage',
      audiences: ['istio-ca'],
    });
  }, 120_000);

  afterAll(async () => {
    await sandbox.destroy();
    await api.server?.stop();
    expect(sandbox.remaining()).toEqual([]);
  }, 60_000);

  it("starts every container of the control plane with deploy/'s exact args and volumes, and passes every probe from the node", async () => {
    const deployments = kind.filter((o) => o.kind === 'Deployment');
    expect(deployments.map((d) => d.metadata.name).sort()).toEqual([
      'istio-citadel',
      'istio-egressgateway',
      'istio-ingressgateway',
      'istio-telemetry',
      'istio-telemetry-redis',
      'istiod',
    ]);
    // Pods first (their addresses go into every pod's /etc/hosts under their Services' names), then containers.
    const pods = deployments.map((d) => ({
      d,
      pod: sandbox.addPod(`${d.metadata.name}-0`, d.metadata.namespace ?? 'default'),
    }));
    for (const { d, pod } of pods) {
      const selector = (d.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels;
      for (const svc of kind.filter((o) => o.kind === 'Service' && o.metadata.namespace === pod.namespace)) {
        const sel = (svc.spec as { selector?: Record<string, string> }).selector ?? {};
        if (Object.keys(sel).length && Object.entries(sel).every(([k, v]) => selector[k] === v)) {
          hosts[`${svc.metadata.name}.${pod.namespace}.svc`] = pod.ip;
          hosts[`${svc.metadata.name}.${pod.namespace}.svc.cluster.local`] = pod.ip;
        }
      }
    }
    hosts['kubernetes.default.svc'] = KUBERNETES_SERVICE_IP;
    hosts['kubernetes.default.svc.cluster.local'] = KUBERNETES_SERVICE_IP;
    expect(Object.keys(hosts)).toEqual(
      expect.arrayContaining([
        'istiod.istio-system.svc',
        'istio-citadel.istio-system.svc',
        'istio-telemetry-redis.istio-system.svc',
      ]),
    );
    for (const { d, pod } of pods) {
      const template = (d.spec as { template: { metadata: { labels: Record<string, string> } } }).template;
      startPod(pod, podSpecOf(d) as unknown as PodSpec, template.metadata.labels);
    }
    for (const { pod, spec } of running) {
      for (const c of spec.containers) {
        await until(pod, c, 'readinessProbe');
        await until(pod, c, 'livenessProbe');
      }
    }
    for (const r of running)
      for (const c of r.containers.values()) {
        expect(c.child.exitCode, `${c.name}\n${c.output()}`).toBeNull();
        expect(c.output(), c.name).not.toMatch(/"level":"fatal"/);
      }
    // istiod led (its Lease in the fake API server) and published the root from the cacerts volume in every namespace.
    const server = api.server!;
    const lease = server.get('coordination.k8s.io/v1', 'Lease', 'istio-leader', 'istio-system');
    expect((lease?.spec as { holderIdentity?: string } | undefined)?.holderIdentity).toMatch(
      /^istiod-0_\d+$/,
    );
    await expect
      .poll(
        () =>
          (server.get('v1', 'ConfigMap', 'istio-ca-root-cert', 'bookinfo')?.data as Json | undefined)?.[
            'root-cert.pem'
          ],
        {
          timeout: 20_000,
        },
      )
      .toBe(secrets.cacerts!['ca.crt']);
  }, 240_000);

  it("runs an injected Bookinfo pod: mizzen-init installs the capture rules as root with NET_ADMIN and NET_RAW only, kubelet's rewritten probes reach productpage through the agent, and istio-proxy turns ready with citadel's certificate and pilot's config", async () => {
    const bookinfo = parseObjects(
      fs.readFileSync(path.join(REPO_ROOT, 'deploy', 'samples', 'bookinfo', 'bookinfo.yaml'), 'utf8'),
    );
    const deployment = bookinfo.find((o) => o.kind === 'Deployment' && o.metadata.name === 'productpage-v1')!;
    const istiod = kind.find((o) => o.kind === 'Deployment' && o.metadata.name === 'istiod')!;
    const flags = (podSpecOf(istiod)!.containers![0] as unknown as Container).args!;
    const flag = (n: string) => flags.find((a) => a.startsWith(`--${n}=`))!.slice(n.length + 3);
    const { pod: injected, injected: done } = injectPod(
      (deployment.spec as { template: PodLike }).template,
      {
        proxyImage: flag('proxy-image'),
        imagePullPolicy: flag('image-pull-policy') as 'IfNotPresent',
        discoveryAddress: flag('discovery-address'),
        caAddress: flag('ca-address'),
      },
      { namespace: 'bookinfo' },
    );
    expect(done).toBe(true);
    const spec = injected.spec as unknown as PodSpec;
    // The root certificate istiod wrote into the namespace, as the pod's istiod-ca-cert volume mounts it.
    configMaps['istio-ca-root-cert'] = api.server!.get('v1', 'ConfigMap', 'istio-ca-root-cert', 'bookinfo')!
      .data as Record<string, string>;
    const pod = sandbox.addPod('productpage-v1-0', 'bookinfo');
    const labels = (injected.metadata?.labels ?? {}) as Record<string, string>;
    api.server!.apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: pod.name, namespace: 'bookinfo', labels },
      spec: {
        serviceAccountName: spec.serviceAccountName,
        nodeName: 'sandbox-node',
        containers: spec.containers,
      },
      status: { phase: 'Running', podIP: pod.ip, podIPs: [{ ip: pod.ip }] },
    });

    // The init container runs to completion first, as root with exactly its capabilities.
    const dirs = volumes(pod, spec, labels);
    const initSpec = spec.initContainers![0]!;
    const init = sandbox.run(pod, containerSpec(pod, spec, initSpec, dirs));
    expect(await init.exited, init.output()).toBe(0);
    const nat = sandbox.exec(pod, ['iptables-save', '-t', 'nat']).stdout;
    expect(nat).toContain(':ISTIO_OUTPUT');
    expect(nat).toMatch(/-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001/);
    expect(nat).toMatch(/-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006/);

    const containers = new Map<string, RunningContainer>();
    for (const c of spec.containers)
      containers.set(c.name, sandbox.run(pod, containerSpec(pod, spec, c, dirs)));
    running.push({ pod, spec, containers });
    const app = spec.containers.find((c) => c.name === 'productpage')!;
    const proxy = spec.containers.find((c) => c.name === 'istio-proxy')!;
    // kubelet probes 15020 /app-health/productpage/readyz; the agent runs the original /health probe against the app.
    expect(app.readinessProbe).toMatchObject({
      httpGet: { path: '/app-health/productpage/readyz', port: 15020 },
    });
    await until(pod, app, 'readinessProbe');
    await until(pod, app, 'livenessProbe');
    // The sidecar is ready once it has its workload certificate (citadel, via the TokenReview of its projected
    // token) and its config (pilot, through the iptables rules of its own pod).
    await until(pod, proxy, 'readinessProbe', 90_000);
    // Readiness does not wait for the certificate: its log line does.
    const issued = () =>
      containers
        .get('istio-proxy')!
        .output()
        .split('\n')
        .filter((l) => l.includes('"msg":"workload certificate issued"'))
        .map((l) => (JSON.parse(l) as { identity: string }).identity);
    await expect
      .poll(issued, { timeout: 60_000, interval: 250 })
      .toEqual(['spiffe://cluster.local/ns/bookinfo/sa/bookinfo-productpage']);
    // What pilot sent it, from its admin port: Istio's listeners for a pod under iptables capture.
    const dump = sandbox.fetchFromNode(`http://${pod.ip}:15000/config_dump`);
    expect(dump).toContain('"virtualOutbound"');
    expect(dump).toContain('"virtualInbound"');
    for (const c of containers.values()) expect(c.child.exitCode, `${c.name}\n${c.output()}`).toBeNull();
  }, 240_000);
});

describe("each Bookinfo image's entrypoint, run from the build output as a process (no container runtime here)", () => {
  const entrypoint = (image: string) => {
    const name = image.replace(/^.*mizzen\//, '').replace(/:.*$/, '');
    return path.join(REPO_ROOT, checkDockerfile(table.get(name)!).entrypoint!);
  };

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
