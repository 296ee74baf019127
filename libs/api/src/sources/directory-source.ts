import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { formatIssue, type ValidationIssue } from '../issues.js';
import { type LocatedResource, parseConfigLocated } from '../parse.js';
import { type ConfigResource, configKey } from '../resource.js';
import { type ConfigSource, Listeners } from './config-source.js';
import { deepFreeze, stableJson } from './stable-json.js';

export interface DirectorySourceOptions {
  /** Called with the issues that appeared in a (re)load: invalid files, conflicting definitions. */
  onIssues?: (issues: ValidationIssue[]) => void;
  /** How long to wait after the last file event before reloading (editors write in bursts). Default 100ms. */
  debounceMs?: number;
}

interface FileState {
  text: string;
  /** The resources of the last version of the file that had no errors (none if it never had one). */
  good: LocatedResource[];
  /** The issues of the current version. */
  issues: ValidationIssue[];
  /** The file was found empty once; if it still is on the next look, that is what the user meant. */
  emptySeen?: boolean;
}

const EXTENSIONS = new Set(['.yaml', '.yml', '.json']);

/**
 * A directory of Istio YAML (`*.yaml`, `*.yml`, `*.json`, recursively),
 * watched for changes. Nothing is half-applied: a file with an error keeps
 * contributing the resources of its last good version, and its issues are
 * reported until it is fixed. When two files define the same
 * kind/namespace/name, the first by sorted path wins and the other is
 * reported.
 */
export class DirectorySource implements ConfigSource {
  readonly name: string;
  private readonly dir: string;
  private readonly debounceMs: number;
  private readonly listeners = new Listeners();
  private files = new Map<string, FileState>();
  private effective: ConfigResource[] = [];
  private fingerprint = '';
  private current: ValidationIssue[] = [];
  private reported = new Set<string>();
  private watcher: fs.FSWatcher | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = true;

  constructor(
    dir: string,
    private readonly options: DirectorySourceOptions = {},
  ) {
    this.dir = path.resolve(dir);
    this.name = `dir:${this.dir}`;
    this.debounceMs = options.debounceMs ?? 100;
  }

  async start(): Promise<void> {
    let stat: fs.Stats;
    try {
      stat = await fsp.stat(this.dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new Error(
        code === 'ENOENT'
          ? `config directory ${this.dir} does not exist`
          : `cannot read config directory ${this.dir}: ${(err as Error).message}`,
      );
    }
    if (!stat.isDirectory()) throw new Error(`config directory ${this.dir} is not a directory`);
    this.stopped = false;
    // Watch before the first scan, so a change during the scan is not missed.
    this.watcher = fs.watch(this.dir, { recursive: true }, () => this.schedule());
    this.watcher.on('error', () => this.schedule());
    await this.reload();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.watcher?.close();
    this.watcher = undefined;
    await this.running;
  }

  list(): ConfigResource[] {
    return [...this.effective];
  }

  onChange(listener: () => void): () => void {
    return this.listeners.add(listener);
  }

  issues(): ValidationIssue[] {
    return [...this.current];
  }

  private schedule(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.run(), this.debounceMs);
  }

  /** One reload at a time; events during a reload cause one more afterwards. */
  private run(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.reload()
      .catch((err: unknown) => this.report([this.directoryIssue(`reload failed: ${(err as Error).message}`)]))
      .finally(() => {
        this.running = undefined;
        if (this.again && !this.stopped) {
          this.again = false;
          this.run();
        }
      });
  }

  private async reload(): Promise<void> {
    let paths: string[];
    try {
      paths = await this.listFiles();
    } catch (err) {
      // The directory went away or became unreadable: keep what is in force, say why.
      this.report([this.directoryIssue(`cannot read the directory: ${(err as Error).message}`)]);
      return;
    }
    const next = new Map<string, FileState>();
    for (const file of paths) {
      const previous = this.files.get(file);
      let text: string;
      try {
        text = await fsp.readFile(file, 'utf8');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue; // deleted since it was listed
        const issue = this.directoryIssue(`cannot read ${file}: ${(err as Error).message}`, file);
        next.set(file, { text: '', good: previous?.good ?? [], issues: [issue] });
        continue;
      }
      if (previous && previous.text === text) {
        next.set(file, previous.emptySeen ? { ...previous, emptySeen: false } : previous);
        continue;
      }
      if (text.trim() === '' && previous?.good.length && !previous.emptySeen) {
        // Probably caught between an editor's truncate and its write: look again before dropping resources.
        next.set(file, { ...previous, emptySeen: true });
        this.schedule();
        continue;
      }
      const { located, issues } = parseConfigLocated(text, file);
      const broken = issues.some((i) => i.severity === 'error');
      for (const l of located) deepFreeze(l.resource);
      next.set(file, { text, good: broken ? (previous?.good ?? []) : located, issues });
    }
    if (this.stopped) return;
    this.files = next;
    this.recompute();
  }

  private recompute(): void {
    const first = new Map<string, { file: string; document: number }>();
    const effective: ConfigResource[] = [];
    const conflicts: ValidationIssue[] = [];
    for (const [file, state] of this.files) {
      for (const { resource, document, item } of state.good) {
        const key = configKey(resource);
        const winner = first.get(key);
        if (winner) {
          // Within one file parseConfig already warned; across files the first by path wins.
          if (winner.file !== file) {
            conflicts.push({
              severity: 'warning',
              source: file,
              document,
              ...(item !== undefined ? { item } : {}),
              kind: resource.kind,
              namespace: resource.metadata.namespace,
              name: resource.metadata.name,
              path: 'metadata.name',
              message: `ignored: already defined in ${winner.file} (document ${winner.document}), which comes first`,
            });
          }
          continue;
        }
        first.set(key, { file, document });
        effective.push(resource);
      }
    }
    this.current = [...[...this.files.values()].flatMap((s) => s.issues), ...conflicts];
    this.report(this.current, true);

    const keyed = effective.map((r) => ({ key: configKey(r), r })).sort((a, b) => (a.key < b.key ? -1 : 1));
    const fingerprint = stableJson(keyed);
    this.effective = effective;
    if (fingerprint !== this.fingerprint) {
      this.fingerprint = fingerprint;
      this.listeners.emit();
    }
  }

  /** Tells `onIssues` about issues not reported before; `replace` forgets issues that went away. */
  private report(issues: ValidationIssue[], replace = false): void {
    const keys = issues.map(formatIssue);
    const fresh = issues.filter((_, n) => !this.reported.has(keys[n]!));
    if (replace) this.reported = new Set(keys);
    else for (const k of keys) this.reported.add(k);
    if (fresh.length) this.options.onIssues?.(fresh);
  }

  private directoryIssue(message: string, source = this.dir): ValidationIssue {
    return { severity: 'error', source, document: 0, path: '', message };
  }

  /** Every config file under the directory, sorted by path; hidden files and directories are skipped. */
  private async listFiles(): Promise<string[]> {
    const out: string[] = [];
    const visited = new Set<string>();
    const walk = async (dir: string): Promise<void> => {
      const real = await fsp.realpath(dir);
      if (visited.has(real)) return; // a symlink loop
      visited.add(real);
      const entries = await fsp.readdir(dir, { withFileTypes: true });
      for (const entry of entries) {
        if (entry.name.startsWith('.')) continue;
        const full = path.join(dir, entry.name);
        let isDir = entry.isDirectory();
        let isFile = entry.isFile();
        if (entry.isSymbolicLink()) {
          const target = await fsp.stat(full).catch(() => undefined);
          isDir = target?.isDirectory() ?? false;
          isFile = target?.isFile() ?? false;
        }
        if (isDir) await walk(full);
        else if (isFile && EXTENSIONS.has(path.extname(entry.name).toLowerCase())) out.push(full);
      }
    };
    await walk(this.dir);
    return out.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  }
}
