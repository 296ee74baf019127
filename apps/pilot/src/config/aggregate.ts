import type { ConfigResource, ConfigSource, ValidationIssue } from '@mizzen/api';
import { configKey } from '@mizzen/api';

export interface SourcedResource {
  resource: ConfigResource;
  /** The source that supplies it (`dir:/path` or `store:/path`). */
  source: string;
}

/**
 * Several config sources seen as one. Later sources override earlier ones on
 * the same kind/namespace/name — pilot lists the config directory first and
 * the `mizzen apply` store last, so what a user applies wins.
 */
export class AggregateConfig {
  private readonly listeners = new Set<() => void>();
  private readonly unsubscribes: (() => void)[] = [];

  constructor(private readonly sources: readonly ConfigSource[]) {}

  async start(): Promise<void> {
    for (const source of this.sources) {
      await source.start();
      this.unsubscribes.push(source.onChange(() => this.emit()));
    }
  }

  async stop(): Promise<void> {
    for (const u of this.unsubscribes.splice(0)) u();
    for (const source of this.sources) await source.stop();
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Every resource in force, with the source it comes from. */
  entries(): SourcedResource[] {
    const byKey = new Map<string, SourcedResource>();
    for (const source of this.sources) {
      for (const resource of source.list()) byKey.set(configKey(resource), { resource, source: source.name });
    }
    return [...byKey.values()];
  }

  list(): ConfigResource[] {
    return this.entries().map((e) => e.resource);
  }

  issues(): ValidationIssue[] {
    return this.sources.flatMap((s) => s.issues());
  }

  private emit(): void {
    for (const l of this.listeners) l();
  }
}
