import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import {
  applyPatch,
  type Container,
  injectionPatch,
  injectPod,
  iptablesArgs,
  isInjected,
  kubeInject,
  type PodLike,
  shouldInject,
  workloadName,
} from '../src/index.js';

const config = { proxyImage: 'mizzen/sidecar-agent:0.1.0' };

function pod(
  extra: Partial<PodLike['metadata']> = {},
  containers: Container[] = [{ name: 'app', image: 'app:1' }],
): PodLike {
  return { metadata: { name: 'p', namespace: 'ns', labels: { app: 'a' }, ...extra }, spec: { containers } };
}

describe('injection policy', () => {
  it('follows namespace labels, pod opt-in and opt-out as Istio does', () => {
    expect(shouldInject(pod(), { 'istio-injection': 'enabled' }).inject).toBe(true);
    expect(shouldInject(pod(), { 'istio-injection': 'disabled', 'istio.io/rev': 'default' }).inject).toBe(
      false,
    );
    expect(shouldInject(pod(), { 'istio.io/rev': 'default' }).inject).toBe(true);
    expect(shouldInject(pod(), { 'istio.io/rev': 'canary' })).toEqual({
      inject: false,
      reason: "istio.io/rev=canary belongs to another revision's injector",
    });
    expect(shouldInject(pod(), { 'istio.io/rev': 'canary' }, 'canary').inject).toBe(true);
    expect(shouldInject(pod({ labels: { 'istio.io/rev': 'default' } }), {}).inject).toBe(true);
    expect(shouldInject(pod(), {}).inject).toBe(false);
    expect(shouldInject(pod({ labels: { 'sidecar.istio.io/inject': 'true' } }), {}).inject).toBe(true);
    expect(shouldInject(pod({ annotations: { 'sidecar.istio.io/inject': 'false' } }), undefined)).toEqual({
      inject: false,
      reason: 'pod sets sidecar.istio.io/inject: "false"',
    });
    expect(shouldInject(pod(), undefined).inject).toBe(true);
  });

  it('sees a sidecar added by hand (an istio-proxy container, no status annotation) as already injected', () => {
    const byHand = pod({}, [
      { name: 'app' },
      { name: 'istio-proxy', image: 'docker.io/istio/proxyv2:1.24.0' },
    ]);
    expect(byHand.metadata?.annotations?.['sidecar.istio.io/status']).toBeUndefined();
    expect(isInjected(byHand)).toBe(true);
    expect(isInjected(pod({}, [{ name: 'app' }]))).toBe(false);
    expect(shouldInject(byHand, { 'istio-injection': 'enabled' })).toEqual({
      inject: false,
      reason: 'pod already has a sidecar',
    });
    const result = injectPod(
      byHand,
      { proxyImage: 'mizzen/sidecar-agent:0.1.0' },
      { namespaceLabels: { 'istio-injection': 'enabled' } },
    );
    expect(result).toEqual({ pod: byHand, injected: false, reason: 'pod already has a sidecar' });
  });

  it('names the workload after its controller', () => {
    expect(
      workloadName({
        metadata: {
          labels: { 'pod-template-hash': '5d9f7' },
          ownerReferences: [{ kind: 'ReplicaSet', name: 'web-v2-5d9f7', controller: true }],
        },
      }),
    ).toBe('web-v2');
    expect(
      workloadName({
        metadata: { ownerReferences: [{ kind: 'StatefulSet', name: 'db', controller: true }] },
      }),
    ).toBe('db');
    expect(
      workloadName({
        metadata: { ownerReferences: [{ kind: 'Job', name: 'backup-28830240', controller: true }] },
      }),
    ).toBe('backup');
    expect(workloadName({ metadata: { generateName: 'solo-' } })).toBe('solo');
  });
});

describe('the injected pod', () => {
  it("builds istio-iptables' arguments from the traffic annotations", () => {
    expect(iptablesArgs({})).toEqual([
      'iptables',
      '-p',
      '15001',
      '-z',
      '15006',
      '-u',
      '1337',
      '-m',
      'REDIRECT',
      '-i',
      '*',
      '-x',
      '',
      '-b',
      '*',
      '-d',
      '15090,15021,15020',
    ]);
    const args = iptablesArgs({
      'traffic.sidecar.istio.io/excludeOutboundIPRanges': '169.254.169.254/32',
      'traffic.sidecar.istio.io/includeInboundPorts': '8080',
      'traffic.sidecar.istio.io/includeOutboundPorts': '3306',
      'traffic.sidecar.istio.io/excludeInboundPorts': '15020,7000',
    });
    expect(args.slice(args.indexOf('-x'), args.indexOf('-x') + 2)).toEqual(['-x', '169.254.169.254/32']);
    expect(args.slice(args.indexOf('-b'), args.indexOf('-b') + 2)).toEqual(['-b', '8080']);
    expect(args.slice(args.indexOf('-d'), args.indexOf('-d') + 2)).toEqual(['-d', '15090,15021,15020,7000']);
    expect(args.slice(-2)).toEqual(['-q', '3306']);
  });

  it('passes the pod labels to the agent and leaves gRPC probes alone', () => {
    const { pod: out } = injectPod(
      pod({ labels: { app: 'a', version: 'v1' } }, [
        { name: 'app', image: 'app:1', readinessProbe: { grpc: { port: 9000 } } },
      ]),
      config,
    );
    const sidecar = out.spec!.containers![1]!;
    const args = sidecar.args as string[];
    expect(args[args.indexOf('--labels') + 1]).toBe('app=a,version=v1');
    expect(out.spec!.containers![0]!.readinessProbe).toEqual({ grpc: { port: 9000 } });
    expect((sidecar.env ?? []).some((e) => e.name === 'ISTIO_KUBE_APP_PROBERS')).toBe(false);
  });

  it("merges the app's metrics as Istio does: prometheus.io/* handed to the agent, Prometheus pointed at 15020", () => {
    const annotated = pod({
      annotations: {
        'prometheus.io/scrape': 'true',
        'prometheus.io/port': '9102',
        'prometheus.io/path': '/app',
      },
    });
    const { pod: out } = injectPod(annotated, config);
    expect(out.metadata?.annotations).toMatchObject({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': '15020',
      'prometheus.io/path': '/stats/prometheus',
    });
    const env = out.spec!.containers![1]!.env ?? [];
    expect(env.find((e) => e.name === 'ISTIO_PROMETHEUS_ANNOTATIONS')?.value).toBe(
      '{"scrape":"true","path":"/app","port":"9102"}',
    );
    // The patch turns the pod into exactly that, as the webhook sends it.
    expect(applyPatch(annotated, injectionPatch(annotated, out))).toEqual(out);
    // Without annotations: Prometheus scrapes the agent, which has no app metrics to merge.
    const plain = injectPod(pod(), config).pod;
    expect(plain.metadata?.annotations?.['prometheus.io/port']).toBe('15020');
    expect(
      (plain.spec!.containers![1]!.env ?? []).some((e) => e.name === 'ISTIO_PROMETHEUS_ANNOTATIONS'),
    ).toBe(false);
    // prometheus.istio.io/merge-metrics: "false" leaves the pod's annotations alone.
    const optOut = injectPod(
      pod({ annotations: { 'prometheus.istio.io/merge-metrics': 'false', 'prometheus.io/port': '9102' } }),
      config,
    ).pod;
    expect(optOut.metadata?.annotations?.['prometheus.io/port']).toBe('9102');
    expect(optOut.metadata?.annotations?.['prometheus.io/path']).toBeUndefined();
    expect(
      (optOut.spec!.containers![1]!.env ?? []).some((e) => e.name === 'ISTIO_PROMETHEUS_ANNOTATIONS'),
    ).toBe(false);
  });

  it('is a JSONPatch that turns the original pod into the injected one, and nothing on the second pass', () => {
    const original = pod({ annotations: { keep: 'me' } });
    const { pod: injected } = injectPod(original, config);
    const patch = injectionPatch(original, injected);
    expect(applyPatch(original, patch)).toEqual(injected);
    expect(patch.map((p) => p.op)).not.toContain('remove');
    const again = injectPod(injected, config);
    expect(again.injected).toBe(false);
    expect(injectionPatch(injected, again.pod)).toEqual([]);
  });

  it('adds missing labels, annotations and volumes with add operations', () => {
    const bare: PodLike = { metadata: { name: 'bare' }, spec: { containers: [{ name: 'c' }] } };
    const { pod: injected } = injectPod(bare, config);
    const patch = injectionPatch(bare, injected);
    expect(patch.filter((p) => p.op === 'add').map((p) => p.path)).toEqual(
      expect.arrayContaining([
        '/metadata/labels',
        '/metadata/annotations',
        '/spec/initContainers',
        '/spec/volumes',
      ]),
    );
    expect(applyPatch(bare, patch)).toEqual(injected);
  });
});

describe('kube-inject over YAML', () => {
  it('injects every workload kind and passes other objects through', () => {
    const yaml = `apiVersion: batch/v1
kind: CronJob
metadata: { name: nightly, namespace: ops }
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{ name: job, image: job:1 }]
---
apiVersion: v1
kind: List
items:
  - apiVersion: apps/v1
    kind: StatefulSet
    metadata: { name: db }
    spec:
      serviceName: db
      selector: { matchLabels: { app: db } }
      template:
        metadata: { labels: { app: db } }
        spec: { containers: [{ name: db, image: db:1 }] }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: settings }
data: { a: b }
`;
    const docs = parseAllDocuments(kubeInject(yaml, config)).map((d) => d.toJS());
    expect(docs).toHaveLength(3);
    const cron = docs[0].spec.jobTemplate.spec.template.spec;
    expect(cron.containers.map((c: Container) => c.name)).toEqual(['job', 'istio-proxy']);
    const env = cron.containers[1].env as { name: string; value?: string }[];
    expect(env.find((e) => e.name === 'ISTIO_META_OWNER')!.value).toBe(
      'kubernetes://apis/batch/v1/namespaces/ops/cronjobs/nightly',
    );
    expect(docs[1].items[0].spec.template.spec.initContainers[0].name).toBe('mizzen-init');
    expect(docs[2]).toEqual({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'settings' },
      data: { a: 'b' },
    });
  });

  it('names the document that does not parse', () => {
    expect(() => kubeInject('a: 1\n---\nb: [\n', config, 'x.yaml')).toThrow(/^x\.yaml: document 2: /);
  });
});
