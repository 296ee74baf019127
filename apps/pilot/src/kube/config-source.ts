import { CustomObjectsApi, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import {
  type ConfigResource,
  type ConfigSource,
  KIND_NAMES,
  KINDS,
  type Kind,
  type KindInfo,
  parseConfig,
  type ValidationIssue,
} from '@mizzen/api';
import type { Logger } from '@mizzen/runtime';
import { Informer, waitForSync } from './informer.js';
import { type IstioStatus, type StatusWriter, validationStatus } from './status.js';

export interface KubeConfigSourceOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  resyncMs?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Writes `status.validationMessages`; set when this replica may write (the controller gates it on leadership). */
  statusWriter?: StatusWriter;
  /** How long start() waits for every kind to list before going on without the missing ones (30s). */
  syncTimeoutMs?: number;
}

/** An Istio custom resource as the API server returns it. */
export interface IstioObject extends KubernetesObject {
  spec?: unknown;
  status?: IstioStatus;
}

interface Entry {
  object: IstioObject;
  resource?: ConfigResource;
  issues: ValidationIssue[];
}

/** The version pilot watches for a kind: its newest (v1 for every kind Istio has made stable). */
export function watchedVersion(info: KindInfo): string {
  return info.versions[0]!;
}

/** `VirtualService default/reviews` — names an object in issues and logs. */
export function objectLabel(kind: string, namespace: string | undefined, name: string | undefined): string {
  return `${kind} ${namespace ?? 'default'}/${name ?? ''}`;
}

/**
 * Istio's CRDs as a config source: one informer per kind libs/api knows
 * (networking, security and telemetry.istio.io, each watched at its newest
 * version — the API server serves objects created at v1beta1 or v1alpha3 at
 * it too), each object validated with the same rules
 * as `mizzen apply`. Invalid objects are left out of the config and their
 * problems written to `status.validationMessages` (by the leader only).
 */
export class KubeConfigSource implements ConfigSource {
  readonly name = 'kubernetes';
  private readonly informers = new Map<Kind, Informer<IstioObject>>();
  private readonly entries = new Map<string, Entry>();
  private readonly listeners = new Set<() => void>();
  private notifyScheduled = false;

  constructor(private readonly options: KubeConfigSourceOptions) {
    const api = options.kubeConfig.makeApiClient(CustomObjectsApi);
    for (const kind of KIND_NAMES) {
      const info = KINDS[kind];
      const informer = new Informer<IstioObject>({
        kubeConfig: options.kubeConfig,
        resource: `${info.plural}.${info.group}`,
        path: `/apis/${info.group}/${watchedVersion(info)}/${info.plural}`,
        list: () =>
          api.listClusterCustomObject({
            group: info.group,
            version: watchedVersion(info),
            plural: info.plural,
          }),
        logger: options.logger,
        resyncMs: options.resyncMs,
        initialBackoffMs: options.initialBackoffMs,
        maxBackoffMs: options.maxBackoffMs,
      });
      informer.on((event, object) => this.onEvent(kind, event, object));
      this.informers.set(kind, informer);
    }
  }

  /** Starts every informer and resolves when each has listed once (or the sync timeout passed). */
  async start(): Promise<void> {
    for (const informer of this.informers.values()) informer.start();
    await waitForSync(
      [...this.informers.values()],
      this.options.syncTimeoutMs ?? 30_000,
      this.options.logger,
    );
  }

  async stop(): Promise<void> {
    await Promise.all([...this.informers.values()].map((i) => i.stop()));
  }

  list(): ConfigResource[] {
    const out: ConfigResource[] = [];
    for (const e of this.entries.values()) if (e.resource) out.push(e.resource);
    return out;
  }

  onChange(listener: () => void): () => void {
    const entry = () => listener();
    this.listeners.add(entry);
    return () => {
      this.listeners.delete(entry);
    };
  }

  issues(): ValidationIssue[] {
    return [...this.entries.values()].flatMap((e) => e.issues);
  }

  /** The informers, for /debug and tests. */
  informerStats(): Record<string, ReturnType<Informer<IstioObject>['stats']>> {
    const out: Record<string, ReturnType<Informer<IstioObject>['stats']>> = {};
    for (const i of this.informers.values()) out[i.resource] = i.stats();
    return out;
  }

  /** Writes every object's status again (after this replica became the leader). */
  reconcileStatus(): void {
    for (const [key, e] of this.entries) this.writeStatus(key, e);
  }

  private onEvent(kind: Kind, event: string, object: IstioObject): void {
    const ns = object.metadata?.namespace ?? 'default';
    const name = object.metadata?.name ?? '';
    const key = `${kind}/${ns}/${name}`;
    if (event === 'delete') {
      this.options.statusWriter?.forget(key);
      if (this.entries.delete(key)) this.scheduleNotify();
      return;
    }
    const previous = this.entries.get(key);
    if (event === 'resync' && previous) {
      this.writeStatus(key, previous);
      return;
    }
    // The spec is what matters: status-only updates (our own writes) change nothing else.
    if (
      previous &&
      previous.object.metadata?.generation !== undefined &&
      previous.object.metadata.generation === object.metadata?.generation &&
      JSON.stringify(previous.object.spec) === JSON.stringify(object.spec) &&
      JSON.stringify(previous.object.metadata?.labels) === JSON.stringify(object.metadata?.labels) &&
      JSON.stringify(previous.object.metadata?.annotations) === JSON.stringify(object.metadata?.annotations)
    ) {
      previous.object = object;
      this.writeStatus(key, previous);
      return;
    }
    const { resources, issues } = parseConfig(
      JSON.stringify({
        ...object,
        kind,
        apiVersion: object.apiVersion ?? `${KINDS[kind].group}/${watchedVersion(KINDS[kind])}`,
      }),
      objectLabel(kind, ns, name),
    );
    for (const i of issues) {
      const line = `${i.kind ?? kind} ${ns}/${name}: ${i.path ? `${i.path}: ` : ''}${i.message}`;
      if (i.severity === 'error') this.options.logger.warn({ resource: key }, `invalid config: ${line}`);
    }
    const entry: Entry = { object, resource: resources[0], issues };
    this.entries.set(key, entry);
    this.writeStatus(key, entry);
    this.scheduleNotify();
  }

  private writeStatus(key: string, entry: Entry): void {
    const writer = this.options.statusWriter;
    if (!writer) return;
    const kind = key.slice(0, key.indexOf('/')) as Kind;
    writer.ensure(key, KINDS[kind], entry.object, validationStatus(entry.issues, entry.object));
  }

  /** Many events arrive together (a list, a relist): tell listeners once per turn. */
  private scheduleNotify(): void {
    if (this.notifyScheduled) return;
    this.notifyScheduled = true;
    setImmediate(() => {
      this.notifyScheduled = false;
      for (const l of [...this.listeners]) l();
    });
  }
}
