import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { KINDS } from '@mizzen/api';
import { injectPod, type PodLike } from '@mizzen/inject';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  appDockerfiles,
  checkDockerfile,
  findRenderer,
  imagesOf,
  imageTable,
  type K8sObject,
  kustomizations,
  parseObjects,
  podSpecOf,
  REPO_ROOT,
  type Renderer,
  servicePortProblems,
  validateObject,
  webhookProblems,
  workloadProblems,
} from '../src/index.js';

const rel = (dir: string) => path.relative(REPO_ROOT, dir);
const rendered = new Map<string, K8sObject[]>();
let renderer: Renderer;

beforeAll(() => {
  // Fails (never skips) with a sentence naming what to install when no kustomize is found.
  renderer = findRenderer();
  for (const dir of kustomizations()) rendered.set(rel(dir), parseObjects(renderer.render(dir)));
}, 60_000);

function all(where: string): K8sObject[] {
  const objects = rendered.get(where);
  if (!objects) throw new Error(`${where} was not rendered`);
  return objects;
}

describe('deploy/ rendered offline with kustomize (no cluster here: rendering and schemas only)', () => {
  it('finds a kustomize and renders every kustomization', () => {
    expect(renderer.description).toMatch(/kustomize/);
    expect([...rendered.keys()]).toEqual([
      'deploy/base',
      'deploy/overlays/kind',
      'deploy/overlays/production',
      'deploy/samples/bookinfo',
    ]);
    for (const [dir, objects] of rendered) expect(objects.length, dir).toBeGreaterThan(0);
  });

  it('validates every rendered object against its schema (kubernetes-models, @kubernetes-models/istio, @kubernetes-models/cert-manager)', async () => {
    const problems: string[] = [];
    let checked = 0;
    for (const objects of rendered.values()) {
      for (const o of objects) {
        problems.push(...(await validateObject(o)));
        checked++;
      }
    }
    expect(problems).toEqual([]);
    expect(checked).toBeGreaterThan(100);
  });

  it('has what an Istio user looks for in istio-system', () => {
    const kind = all('deploy/overlays/kind');
    const names = (k: string) =>
      kind
        .filter((o) => o.kind === k && (o.metadata.namespace ?? 'istio-system') === 'istio-system')
        .map((o) => o.metadata.name);
    expect(names('Deployment')).toEqual(
      expect.arrayContaining([
        'istiod',
        'istio-citadel',
        'istio-ingressgateway',
        'istio-egressgateway',
        'istio-telemetry',
      ]),
    );
    expect(names('Service')).toEqual(
      expect.arrayContaining(['istiod', 'istio-citadel', 'istio-ingressgateway', 'istio-telemetry']),
    );
    expect(names('ServiceAccount')).toEqual(
      expect.arrayContaining(['istiod-service-account', 'istio-ingressgateway-service-account']),
    );
    expect(names('ConfigMap')).toContain('istio');
    expect(names('MutatingWebhookConfiguration')).toEqual(['istio-sidecar-injector']);
    expect(names('ValidatingWebhookConfiguration')).toEqual(['istiod-istio-system']);
    const istiod = kind.find((o) => o.kind === 'Service' && o.metadata.name === 'istiod')!;
    expect((istiod.spec as { ports: unknown[] }).ports).toEqual([
      { name: 'grpc-xds', port: 15010, targetPort: 15010, protocol: 'TCP' },
      { name: 'https-webhook', port: 443, targetPort: 15017, protocol: 'TCP' },
      { name: 'http-monitoring', port: 15014, targetPort: 15014, protocol: 'TCP' },
    ]);
    const crds = kind.filter((o) => o.kind === 'CustomResourceDefinition').map((o) => o.metadata.name);
    expect(crds).toEqual(
      expect.arrayContaining([
        'virtualservices.networking.istio.io',
        'destinationrules.networking.istio.io',
        'gateways.networking.istio.io',
        'serviceentries.networking.istio.io',
        'workloadentries.networking.istio.io',
        'sidecars.networking.istio.io',
        'peerauthentications.security.istio.io',
        'authorizationpolicies.security.istio.io',
        'requestauthentications.security.istio.io',
        'telemetries.telemetry.istio.io',
      ]),
    );
  });

  it('has a CRD serving every version of every kind libs/api knows, with status as a subresource', () => {
    const crds = new Map(
      all('deploy/base')
        .filter((o) => o.kind === 'CustomResourceDefinition')
        .map((o) => [
          o.metadata.name,
          o.spec as {
            group: string;
            names: { kind: string };
            versions: {
              name: string;
              served: boolean;
              storage: boolean;
              subresources?: { status?: unknown };
            }[];
          },
        ]),
    );
    for (const info of Object.values(KINDS)) {
      const crd = crds.get(`${info.plural}.${info.group}`);
      expect(crd, `CRD for ${info.kind}`).toBeDefined();
      expect(crd!.names.kind).toBe(info.kind);
      expect(crd!.versions.map((v) => v.name)).toEqual([...info.versions]);
      expect(crd!.versions.every((v) => v.served && v.subresources?.status !== undefined)).toBe(true);
      // Pilot watches the newest version, which is also the one stored.
      expect(crd!.versions.find((v) => v.storage)?.name).toBe(info.versions[0]);
    }
  });

  it('exposes the ingress on NodePorts 30080/30443 on kind, with loaded images used as they are (IfNotPresent)', () => {
    const kind = all('deploy/overlays/kind');
    const ingress = kind.find((o) => o.kind === 'Service' && o.metadata.name === 'istio-ingressgateway')!;
    const spec = ingress.spec as { type: string; ports: { port: number; nodePort?: number }[] };
    expect(spec.type).toBe('NodePort');
    expect(spec.ports.filter((p) => p.nodePort).map((p) => [p.port, p.nodePort])).toEqual([
      [80, 30080],
      [443, 30443],
    ]);
    const kindConfig = fs.readFileSync(path.join(REPO_ROOT, 'tools', 'kind', 'kind-config.yaml'), 'utf8');
    expect(kindConfig).toMatch(/containerPort: 30080, hostPort: 30080/);
    expect(kindConfig).toMatch(/containerPort: 30443, hostPort: 30443/);
    for (const o of kind.filter(
      (x) => x.kind === 'Deployment' && imagesOf(x).some((i) => i.startsWith('mizzen/')),
    )) {
      const containers = (o.spec as { template: { spec: { containers: { imagePullPolicy?: string }[] } } })
        .template.spec.containers;
      expect(
        containers.map((c) => c.imagePullPolicy),
        o.metadata.name,
      ).toEqual(['IfNotPresent']);
      // A pinned tag: with :latest (or none) IfNotPresent would mean Always.
      expect(
        imagesOf(o).every((i) => /:\d+\.\d+\.\d+$/.test(i)),
        o.metadata.name,
      ).toBe(true);
    }
    // Injected sidecars too: the injector's pull policy.
    const istiod = kind.find((o) => o.kind === 'Deployment' && o.metadata.name === 'istiod')!;
    expect(JSON.stringify(istiod)).toContain('--image-pull-policy=IfNotPresent');
  });

  it('runs several replicas of every control-plane and gateway Deployment in production, each with a budget and spread across nodes', () => {
    const prod = all('deploy/overlays/production');
    const deployments = [
      'istiod',
      'istio-ingressgateway',
      'istio-egressgateway',
      'istio-citadel',
      'istio-telemetry',
    ];
    for (const name of deployments) {
      const d = prod.find((o) => o.kind === 'Deployment' && o.metadata.name === name)!;
      const spec = d.spec as {
        replicas: number;
        selector: { matchLabels: Record<string, string> };
        template: {
          spec: {
            affinity?: {
              podAntiAffinity?: {
                preferredDuringSchedulingIgnoredDuringExecution?: {
                  podAffinityTerm: {
                    topologyKey: string;
                    labelSelector: { matchLabels: Record<string, string> };
                  };
                }[];
              };
            };
          };
        };
      };
      expect(spec.replicas, name).toBe(2);
      const term =
        spec.template.spec.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution?.[0]
          ?.podAffinityTerm;
      expect(term?.topologyKey, `${name} anti-affinity`).toBe('kubernetes.io/hostname');
      expect(spec.selector.matchLabels, name).toMatchObject(term!.labelSelector.matchLabels);
      // A budget that selects this Deployment's pods.
      const pdb = prod.find(
        (o) =>
          o.kind === 'PodDisruptionBudget' &&
          Object.entries(
            (o.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels,
          ).every(
            ([k, v]) =>
              (d.spec as { template: { metadata: { labels: Record<string, string> } } }).template.metadata
                .labels[k] === v,
          ),
      );
      expect(pdb?.spec, `${name} PodDisruptionBudget`).toMatchObject({ minAvailable: 1 });
    }
    expect(prod.filter((o) => o.kind === 'PodDisruptionBudget').length).toBe(deployments.length);
    expect(
      prod
        .filter((o) => o.kind === 'HorizontalPodAutoscaler')
        .map((o) => o.metadata.name)
        .sort(),
    ).toEqual(['istio-ingressgateway', 'istiod']);
  });

  it("keeps the gateways alive while istiod is away: liveness is not the readiness probe, which needs pilot's config", () => {
    for (const name of ['istio-ingressgateway', 'istio-egressgateway']) {
      const d = all('deploy/overlays/kind').find((o) => o.kind === 'Deployment' && o.metadata.name === name)!;
      const c = podSpecOf(d)!.containers![0] as unknown as {
        readinessProbe: unknown;
        livenessProbe: unknown;
      };
      expect(c.readinessProbe, name).toMatchObject({ httpGet: { path: '/healthz/ready', port: 15021 } });
      expect(c.livenessProbe, name).toMatchObject({ tcpSocket: { port: 15021 } });
    }
  });

  it('gives every container resources, probes and a non-root read-only user', () => {
    const problems = [...rendered.values()].flat().flatMap(workloadProblems);
    expect(problems).toEqual([]);
  });

  it('checks init containers too: resources, and root only for an iptables init with exactly NET_ADMIN and NET_RAW', () => {
    const pod = (init: Record<string, unknown>): K8sObject => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p', namespace: 'ns' },
      spec: { initContainers: [{ name: 'init', ...init }] },
    });
    const resources = { requests: { cpu: '10m', memory: '10Mi' }, limits: { cpu: '1', memory: '1Gi' } };
    const istioInit = {
      allowPrivilegeEscalation: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
      privileged: false,
      runAsNonRoot: false,
      runAsUser: 0,
    };
    expect(workloadProblems(pod({ resources, securityContext: istioInit }))).toEqual([]);
    expect(workloadProblems(pod({ securityContext: istioInit }))).toEqual([
      'Pod ns/p init container init: no cpu/memory requests',
      'Pod ns/p init container init: no cpu/memory limits',
    ]);
    expect(
      workloadProblems(
        pod({
          resources,
          securityContext: {
            ...istioInit,
            capabilities: { add: ['NET_ADMIN', 'NET_RAW', 'SYS_ADMIN'], drop: ['ALL'] },
          },
        }),
      ),
    ).toEqual([
      'Pod ns/p init container init: runs as root with capabilities [NET_ADMIN, NET_RAW, SYS_ADMIN]; only an iptables init container (exactly NET_ADMIN and NET_RAW) may run as root',
    ]);
    expect(
      workloadProblems(
        pod({
          resources,
          securityContext: { runAsUser: 0, capabilities: { add: ['NET_ADMIN', 'NET_RAW'] } },
        }),
      ),
    ).toEqual([
      'Pod ns/p init container init: runs as root without dropping ALL other capabilities',
      'Pod ns/p init container init: runs as root with privilege escalation allowed',
    ]);
    // An init container that is not the iptables step follows the rules of any container (no probes needed).
    expect(
      workloadProblems(pod({ resources, securityContext: { runAsNonRoot: true, runAsUser: 1000 } })),
    ).toEqual(['Pod ns/p init container init: root filesystem is writable']);
  });

  it('holds the injected Bookinfo pods to the same policy: the istio-proxy sidecar and the mizzen-init iptables step', () => {
    const problems: string[] = [];
    let inits = 0;
    for (const d of all('deploy/samples/bookinfo').filter((o) => o.kind === 'Deployment')) {
      const template = (d.spec as { template: PodLike }).template;
      const { pod, injected } = injectPod(
        template,
        { proxyImage: 'mizzen/sidecar-agent:0.1.0' },
        { namespace: 'bookinfo' },
      );
      expect(injected, d.metadata.name).toBe(true);
      inits += pod.spec?.initContainers?.length ?? 0;
      problems.push(
        ...workloadProblems({
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: d.metadata.name, namespace: 'bookinfo' },
          spec: pod.spec,
        }),
      );
    }
    expect(inits).toBe(6);
    // One deliberate gap, as in Istio: the sidecar has a readiness probe only (liveness on
    // readiness would restart every sidecar while pilot is unreachable).
    expect(problems).toEqual(
      ['details-v1', 'productpage-v1', 'ratings-v1', 'reviews-v1', 'reviews-v2', 'reviews-v3'].map(
        (n) => `Pod bookinfo/${n} container istio-proxy: no livenessProbe`,
      ),
    );
  });

  it('names every Service port by its protocol, as Istio needs', () => {
    expect([...rendered.values()].flat().flatMap(servicePortProblems)).toEqual([]);
  });

  it('gives every admission webhook a CA bundle source', () => {
    const objects = [...rendered.values()].flat();
    expect(objects.filter((o) => o.kind.endsWith('WebhookConfiguration')).length).toBeGreaterThan(0);
    expect(objects.flatMap(webhookProblems)).toEqual([]);
    // cainjector's source is the Certificate the cert-manager component creates.
    const kind = all('deploy/overlays/kind');
    const cert = kind.find((o) => o.kind === 'Certificate' && o.metadata.name === 'istiod-webhook');
    expect((cert!.spec as { dnsNames: string[] }).dnsNames).toContain('istiod.istio-system.svc');
  });

  it('issues the mesh root and citadel intermediate with cert-manager in Istio plug-in CA layout', () => {
    const kind = all('deploy/overlays/kind');
    const certs = kind.filter((o) => o.kind === 'Certificate');
    const root = certs.find((o) => o.metadata.name === 'mizzen-root-ca')!.spec as Record<string, unknown>;
    const intermediate = certs.find((o) => o.metadata.name === 'cacerts')!.spec as Record<string, unknown>;
    // A self-signed ClusterIssuer → the root Certificate (isCA) → a CA Issuer on its secret → the intermediate.
    const selfSigned = kind.find(
      (o) => o.kind === 'ClusterIssuer' && o.metadata.name === 'mizzen-selfsigned',
    )!;
    expect(selfSigned.spec).toEqual({ selfSigned: {} });
    expect(selfSigned.metadata.namespace).toBeUndefined();
    expect(root).toMatchObject({
      isCA: true,
      secretName: 'mizzen-root-ca',
      issuerRef: { name: 'mizzen-selfsigned', kind: 'ClusterIssuer', group: 'cert-manager.io' },
    });
    const caIssuer = kind.find((o) => o.kind === 'Issuer' && o.metadata.name === 'mizzen-root')!;
    expect(caIssuer.spec).toEqual({ ca: { secretName: 'mizzen-root-ca' } });
    expect(intermediate).toMatchObject({
      isCA: true,
      secretName: 'cacerts',
      issuerRef: { name: 'mizzen-root' },
    });
    const citadel = JSON.stringify(
      kind.find((o) => o.kind === 'Deployment' && o.metadata.name === 'istio-citadel'),
    );
    for (const f of ['ca-cert.pem', 'ca-key.pem', 'root-cert.pem', 'cert-chain.pem'])
      expect(citadel).toContain(f);
  });

  it('serves Bookinfo over HTTPS on kind: the sample Gateway names the certificate cert-manager issues, reached on NodePort 30443', () => {
    const bookinfo = all('deploy/samples/bookinfo');
    const gateway = bookinfo.find((o) => o.kind === 'Gateway' && o.metadata.name === 'bookinfo-gateway')!;
    const servers = (
      gateway.spec as {
        servers: {
          port: { number: number; protocol: string };
          hosts: string[];
          tls?: Record<string, string>;
        }[];
      }
    ).servers;
    const https = servers.find((srv) => srv.port.protocol === 'HTTPS')!;
    expect(https.port.number).toBe(443);
    expect(https.tls).toEqual({ mode: 'SIMPLE', credentialName: 'bookinfo-credential' });
    const kind = all('deploy/overlays/kind');
    // The credential lives where the ingress gateway runs (istio-system), as the secret cert-manager writes.
    const cert = kind.find((o) => o.kind === 'Certificate' && o.metadata.name === 'bookinfo-credential')!;
    expect(cert.metadata.namespace).toBe('istio-system');
    const certSpec = cert.spec as { secretName: string; dnsNames: string[]; issuerRef: { name: string } };
    expect(certSpec.secretName).toBe('bookinfo-credential');
    expect(certSpec.dnsNames).toEqual(expect.arrayContaining(https.hosts));
    // NodePort 30443 → Service port 443 → the container port the gateway's --port-map gives server port 443.
    const svc = kind.find((o) => o.kind === 'Service' && o.metadata.name === 'istio-ingressgateway')!;
    const port = (
      svc.spec as { ports: { port: number; targetPort: number; nodePort?: number }[] }
    ).ports.find((p) => p.port === 443)!;
    expect(port.nodePort).toBe(30443);
    const ingress = kind.find((o) => o.kind === 'Deployment' && o.metadata.name === 'istio-ingressgateway')!;
    const args = (podSpecOf(ingress)!.containers![0] as unknown as { args: string[] }).args;
    const portMap = args.find((a) => a.startsWith('--port-map='))!.slice('--port-map='.length);
    expect(portMap.split(',')).toContain(`443=${port.targetPort}`);
  });

  it('ships Grafana dashboards (mesh, service, workload, control plane) and Prometheus jobs for proxies, istiod and citadel', () => {
    const kind = all('deploy/overlays/kind');
    const cm = kind.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'istio-grafana-dashboards')!;
    expect(cm.metadata.labels).toMatchObject({ grafana_dashboard: '1' });
    const data = cm.data as Record<string, string>;
    expect(Object.keys(data).sort()).toEqual([
      'mizzen-control-plane-dashboard.json',
      'mizzen-mesh-dashboard.json',
      'mizzen-service-dashboard.json',
      'mizzen-workload-dashboard.json',
    ]);
    // What e2e/test/telemetry.test.ts checks against real processes' metrics; here: each is a dashboard.
    for (const [file, json] of Object.entries(data)) {
      const dashboard = JSON.parse(json) as {
        uid: string;
        panels: { type: string; targets?: { expr: string }[] }[];
      };
      expect(dashboard.uid, file).toBe(file.replace(/-dashboard\.json$/, ''));
      expect(dashboard.panels.filter((p) => p.targets?.length).length, file).toBeGreaterThan(4);
    }
    const exprs = Object.values(data).join('\n');
    for (const metric of [
      'istio_requests_total',
      'istio_request_duration_milliseconds_bucket',
      'istio_tcp_sent_bytes_total',
      'pilot_xds_pushes',
      'citadel_server_csr_count',
    ])
      expect(exprs).toContain(metric);
    const scrape = kind.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'istio-prometheus-scrape')!;
    const jobs = parseObjects(
      (scrape.data as Record<string, string>)['scrape-configs.yaml']!,
    )[0] as unknown as {
      job_name: string;
    }[];
    expect(jobs.map((j) => j.job_name)).toEqual(['envoy-stats', 'istiod', 'citadel']);
  });

  it('deploys Bookinfo with app/version labels, named ports and an injection-labelled namespace', () => {
    const bookinfo = all('deploy/samples/bookinfo');
    const ns = bookinfo.find((o) => o.kind === 'Namespace')!;
    expect(ns.metadata).toMatchObject({ name: 'bookinfo', labels: { 'istio-injection': 'enabled' } });
    const deployments = bookinfo.filter((o) => o.kind === 'Deployment');
    expect(deployments.map((d) => d.metadata.name).sort()).toEqual([
      'details-v1',
      'productpage-v1',
      'ratings-v1',
      'reviews-v1',
      'reviews-v2',
      'reviews-v3',
    ]);
    for (const d of deployments) {
      const labels = (d.spec as { template: { metadata: { labels: Record<string, string> } } }).template
        .metadata.labels;
      expect(Object.keys(labels).sort(), d.metadata.name).toEqual(['app', 'version']);
    }
    expect(
      bookinfo
        .filter((o) => o.kind === 'Service')
        .map((s) => s.metadata.name)
        .sort(),
    ).toEqual(['details', 'productpage', 'ratings', 'reviews']);
    expect(bookinfo.map((o) => o.kind)).toEqual(
      expect.arrayContaining(['Gateway', 'VirtualService', 'DestinationRule']),
    );
  });
});

describe('images and Dockerfiles, checked statically (no Docker engine runs here: nothing is built)', () => {
  const table = imageTable();

  it('lists one image per apps/*/Dockerfile in tools/images/build.sh, the cli included', () => {
    const dockerfiles = appDockerfiles();
    expect(dockerfiles.size).toBeGreaterThan(0);
    expect(dockerfiles.get('cli')).toBe('apps/cli/Dockerfile');
    expect(new Map([...table].sort(([a], [b]) => a.localeCompare(b)))).toEqual(dockerfiles);
  });

  it('gives every app with a Dockerfile an Nx docker target that builds its image from the repository root', () => {
    // Nx resolves each target (nx.json's targetDefaults + the app's package.json); --dry-run makes
    // tools/images/build.sh print the docker command instead of needing an engine.
    const nx = spawnSync(
      'npx',
      ['nx', 'run-many', '-t', 'docker', '--outputStyle=static', '--skipNxCache', '--', '--dry-run'],
      { cwd: REPO_ROOT, encoding: 'utf8', timeout: 120_000, env: { ...process.env, NX_DAEMON: 'false' } },
    );
    expect(nx.status, nx.stderr + nx.stdout).toBe(0);
    const version = (
      JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }
    ).version;
    const builds = nx.stdout
      .split('\n')
      .filter((l) => l.startsWith('docker build '))
      .sort();
    expect(builds).toEqual(
      [...appDockerfiles()]
        .map(([name, file]) => `docker build -f ${file} -t mizzen/${name}:${version} .`)
        .sort(),
    );
    // tools/images.sh (the name) builds them all, with the same tags, ready for kind load.
    const all = spawnSync(path.join(REPO_ROOT, 'tools', 'images.sh'), ['--dry-run', '--kind-load'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    });
    expect(all.status, all.stderr).toBe(0);
    const loads = all.stdout.split('\n').filter((l) => l.startsWith('kind load docker-image '));
    expect(loads.sort()).toEqual(
      [...appDockerfiles().keys()]
        .map((n) => `kind load docker-image mizzen/${n}:${version} --name mizzen`)
        .sort(),
    );
  }, 150_000);

  it('has a Dockerfile for every mizzen image deploy/ references, the injected sidecar included', () => {
    const referenced = new Set<string>();
    for (const objects of rendered.values()) {
      for (const o of objects) {
        for (const image of imagesOf(o)) referenced.add(image);
        const text = JSON.stringify(o);
        for (const m of text.matchAll(/--proxy-image=([^"\s]+)/g)) referenced.add(m[1]!);
      }
    }
    const ours = [...referenced].filter((i) => /(^|\/)mizzen\//.test(i));
    expect(ours.length).toBeGreaterThan(5);
    for (const image of ours) {
      const name = image.replace(/^.*mizzen\//, '').replace(/:.*$/, '');
      const dockerfile = table.get(name);
      expect(dockerfile, `image ${image} has no entry in tools/images/build.sh`).toBeDefined();
      expect(fs.existsSync(path.join(REPO_ROOT, dockerfile!)), `${dockerfile} for ${image}`).toBe(true);
    }
  });

  it('parses every Dockerfile: multi-stage, COPY sources that exist, non-root user, OCI labels, entrypoint = build output', () => {
    const problems: string[] = [];
    for (const file of table.values()) {
      const report = checkDockerfile(file);
      expect(report.stages, file).toBeGreaterThanOrEqual(3);
      problems.push(...report.problems);
    }
    expect(problems).toEqual([]);
  });

  it('runs proxies as uid 1337 and gives the sidecar image iptables for the init container', () => {
    for (const name of ['sidecar-agent', 'ingress-gateway']) {
      expect(fs.readFileSync(path.join(REPO_ROOT, table.get(name)!), 'utf8')).toMatch(/^USER 1337:1337$/m);
    }
    expect(fs.readFileSync(path.join(REPO_ROOT, table.get('sidecar-agent')!), 'utf8')).toMatch(
      /apt-get install -y --no-install-recommends iptables/,
    );
  });

  it('keeps host build output out of the build context (.dockerignore)', () => {
    const ignore = fs.readFileSync(path.join(REPO_ROOT, '.dockerignore'), 'utf8');
    for (const p of ['**/node_modules', '**/dist', '.git']) expect(ignore).toContain(p);
  });
});
