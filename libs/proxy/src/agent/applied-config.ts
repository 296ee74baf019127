import { type DecodedResource, TypeUrl } from '@mizzen/xds';

export interface AppliedResource {
  readonly name: string;
  readonly json: Record<string, unknown>;
  readonly version: string;
  readonly lastUpdated: string;
}

interface TypeRecord {
  version: string;
  resources: Map<string, AppliedResource>;
}

/** Wildcard types carry the whole set in every response; the others only what was asked for. */
const WHOLE_SET = new Set<string>([TypeUrl.Listener, TypeUrl.Cluster]);

/** What the proxy runs now, per xDS type, exactly as accepted: the source of /config_dump. */
export class AppliedConfig {
  private readonly types = new Map<string, TypeRecord>();

  record(typeUrl: TypeUrl, version: string, resources: readonly DecodedResource[]): void {
    const now = new Date().toISOString();
    const rec = this.types.get(typeUrl) ?? { version, resources: new Map<string, AppliedResource>() };
    const next = WHOLE_SET.has(typeUrl) ? new Map<string, AppliedResource>() : rec.resources;
    for (const r of resources) {
      const prev = rec.resources.get(r.name);
      const unchanged = prev && JSON.stringify(prev.json) === JSON.stringify(r.json);
      next.set(r.name, unchanged ? prev : { name: r.name, json: r.json, version, lastUpdated: now });
    }
    this.types.set(typeUrl, { version, resources: next });
  }

  /** Drops resources of a non-wildcard type that are no longer subscribed. */
  retain(typeUrl: TypeUrl, names: readonly string[]): void {
    const rec = this.types.get(typeUrl);
    if (!rec) return;
    const keep = new Set(names);
    for (const name of rec.resources.keys()) if (!keep.has(name)) rec.resources.delete(name);
  }

  version(typeUrl: TypeUrl): string {
    return this.types.get(typeUrl)?.version ?? '';
  }

  resources(typeUrl: TypeUrl): AppliedResource[] {
    return [...(this.types.get(typeUrl)?.resources.values() ?? [])].sort((a, b) =>
      a.name < b.name ? -1 : 1,
    );
  }

  has(typeUrl: TypeUrl): boolean {
    return this.types.has(typeUrl);
  }
}
