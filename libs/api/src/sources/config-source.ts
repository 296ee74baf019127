import type { ValidationIssue } from '../issues.js';
import type { ConfigResource } from '../resource.js';

/** Something that supplies Istio resources and says when they change (a directory, a store, Kubernetes). */
export interface ConfigSource {
  /** `dir:/abs/path`, `store:/path/store.json`, ... — names where a resource came from. */
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The resources in force now. */
  list(): ConfigResource[];
  /** Called after the resource set changed; returns a function that unsubscribes. */
  onChange(listener: () => void): () => void;
  /** Problems with the source's content right now (invalid files, conflicts). */
  issues(): ValidationIssue[];
}

/** A set of change listeners. */
export class Listeners {
  private readonly set = new Set<() => void>();

  add(listener: () => void): () => void {
    // Wrap so the same function can subscribe twice and unsubscribe independently.
    const entry = () => listener();
    this.set.add(entry);
    return () => {
      this.set.delete(entry);
    };
  }

  emit(): void {
    for (const listener of [...this.set]) listener();
  }
}
