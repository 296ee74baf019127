import fs from 'node:fs';
import path from 'node:path';
import { formatIssue, formatPath } from '../issues.js';
import { type ConfigResource, configKey, isKind, type Kind, type ObjectMeta } from '../resource.js';
import { checkResource } from '../validation/resource.js';
import { type ConfigSource, Listeners } from './config-source.js';
import { deepFreeze, stableJson } from './stable-json.js';

export interface FileStoreOptions {
  /** Defaults to `store:<file>`. */
  name?: string;
}

export interface ResourceIdentity {
  kind: Kind;
  namespace: string;
  name: string;
}

export interface ApplyOutcome extends ResourceIdentity {
  action: 'created' | 'configured' | 'unchanged';
}

export interface DeleteOutcome extends Omit<ResourceIdentity, 'kind'> {
  kind: string;
  action: 'deleted' | 'not found';
}

interface StoreContent {
  version: 1;
  /** The last resourceVersion handed out. */
  resourceVersion: number;
  resources: ConfigResource[];
}

/**
 * Resources applied through the API (`mizzen apply`) or by pilot itself,
 * persisted as JSON in one file (written to a temporary file and renamed, so
 * a crash never leaves half a file). Every change is atomic: a batch is
 * applied whole or not at all, and listeners hear of it once. Usable before
 * `start()`: the file is read on first use.
 */
export class FileStore implements ConfigSource {
  readonly name: string;
  private readonly file: string;
  private readonly listeners = new Listeners();
  private resources: Map<string, ConfigResource> | undefined;
  private revision = 0;

  constructor(file: string, options: FileStoreOptions = {}) {
    this.file = path.resolve(file);
    this.name = options.name ?? `store:${file}`;
  }

  async start(): Promise<void> {
    this.load();
  }

  async stop(): Promise<void> {}

  list(): ConfigResource[] {
    return [...this.load().values()];
  }

  get(key: string): ConfigResource | undefined {
    return this.load().get(key);
  }

  onChange(listener: () => void): () => void {
    return this.listeners.add(listener);
  }

  issues() {
    return [];
  }

  /**
   * Creates or updates resources, all or none: an invalid resource (or a
   * failed write) throws and changes nothing. Sets `creationTimestamp` on
   * create (kept on update) and bumps `resourceVersion` (and, when the spec
   * changed, `generation`) on every real change.
   */
  apply(resources: ConfigResource[]): ApplyOutcome[] {
    const current = this.load();
    const next = new Map(current);
    let revision = this.revision;
    const now = new Date().toISOString();
    const outcomes: ApplyOutcome[] = [];
    for (const [n, input] of resources.entries()) {
      const incoming = this.validated(input, n);
      const key = configKey(incoming);
      const identity = {
        kind: incoming.kind,
        namespace: incoming.metadata.namespace,
        name: incoming.metadata.name,
      };
      const existing = next.get(key);
      const specChanged = !existing || stableJson(existing.spec) !== stableJson(incoming.spec);
      if (existing && !specChanged && sameMetadata(existing.metadata, incoming.metadata)) {
        outcomes.push({ ...identity, action: 'unchanged' });
        continue;
      }
      revision++;
      const metadata: ObjectMeta = {
        ...incoming.metadata,
        creationTimestamp: existing?.metadata.creationTimestamp ?? now,
        resourceVersion: String(revision),
        generation: existing ? (existing.metadata.generation ?? 1) + (specChanged ? 1 : 0) : 1,
      };
      next.set(key, deepFreeze({ ...incoming, metadata } as ConfigResource));
      outcomes.push({ ...identity, action: existing ? 'configured' : 'created' });
    }
    if (revision !== this.revision) this.commit(next, revision);
    return outcomes;
  }

  /** Deletes resources by `Kind/namespace/name` key, all in one change. */
  delete(keys: string[]): DeleteOutcome[] {
    const next = new Map(this.load());
    const outcomes: DeleteOutcome[] = [];
    for (const key of keys) {
      const [kind = '', namespace = '', ...rest] = key.split('/');
      const found = next.delete(key);
      outcomes.push({ kind, namespace, name: rest.join('/'), action: found ? 'deleted' : 'not found' });
    }
    if (outcomes.some((o) => o.action === 'deleted')) this.commit(next, this.revision + 1);
    return outcomes;
  }

  private validated(input: ConfigResource, index: number): ConfigResource {
    const checked = checkResource({
      apiVersion: input.apiVersion,
      kind: input.kind,
      metadata: input.metadata,
      spec: input.spec,
    });
    if (checked.resource) return structuredClone(checked.resource);
    const errors = checked.issues
      .filter((i) => i.severity === 'error')
      .map((i) =>
        formatIssue({
          severity: 'error',
          source: this.name,
          document: index + 1,
          kind: checked.kind,
          namespace: checked.namespace,
          name: checked.name,
          path: formatPath(i.path),
          message: i.message,
        }),
      );
    throw new Error(`nothing applied: resource ${index + 1} of the batch is invalid: ${errors.join('; ')}`);
  }

  private commit(next: Map<string, ConfigResource>, revision: number): void {
    this.persist({ version: 1, resourceVersion: revision, resources: [...next.values()] });
    this.resources = next;
    this.revision = revision;
    this.listeners.emit();
  }

  private persist(content: StoreContent): void {
    const tmp = `${this.file}.${process.pid}.${Date.now()}.tmp`;
    try {
      fs.mkdirSync(path.dirname(this.file), { recursive: true });
      const fd = fs.openSync(tmp, 'w', 0o600);
      try {
        fs.writeFileSync(fd, `${JSON.stringify(content, null, 2)}\n`);
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(tmp, this.file);
    } catch (err) {
      fs.rmSync(tmp, { force: true });
      throw new Error(`cannot write config store ${this.file}: ${(err as Error).message}`);
    }
  }

  private load(): Map<string, ConfigResource> {
    if (this.resources) return this.resources;
    let text: string;
    try {
      text = fs.readFileSync(this.file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new Error(`cannot read config store ${this.file}: ${(err as Error).message}`);
      }
      text = '';
    }
    const map = new Map<string, ConfigResource>();
    let revision = 0;
    if (text.trim() !== '') {
      const content = parseStore(text, this.file);
      revision = content.resourceVersion;
      for (const r of content.resources) {
        map.set(configKey(r), deepFreeze(r));
        revision = Math.max(revision, Number(r.metadata.resourceVersion) || 0);
      }
    }
    this.resources = map;
    this.revision = revision;
    return map;
  }
}

function sameMetadata(a: ObjectMeta, b: ObjectMeta): boolean {
  return (
    stableJson(a.labels ?? {}) === stableJson(b.labels ?? {}) &&
    stableJson(a.annotations ?? {}) === stableJson(b.annotations ?? {})
  );
}

function parseStore(text: string, file: string): StoreContent {
  const corrupt = (reason: string) => new Error(`config store ${file} is corrupt: ${reason}`);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw corrupt(`not valid JSON (${(err as Error).message})`);
  }
  const d = data as Partial<StoreContent> | null;
  if (typeof d !== 'object' || d === null || !Array.isArray(d.resources))
    throw corrupt('expected an object with a "resources" list');
  for (const [i, r] of d.resources.entries()) {
    const m = (r as Partial<ConfigResource> | null)?.metadata;
    const ok =
      typeof r === 'object' &&
      r !== null &&
      isKind(r.kind) &&
      typeof m?.name === 'string' &&
      typeof m.namespace === 'string' &&
      typeof r.spec === 'object' &&
      r.spec !== null;
    if (!ok)
      throw corrupt(
        `resources[${i}] is not a resource (it needs kind, metadata.name, metadata.namespace and spec)`,
      );
  }
  return { version: 1, resourceVersion: Number(d.resourceVersion) || 0, resources: d.resources };
}
