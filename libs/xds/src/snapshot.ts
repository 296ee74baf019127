import { contentVersion, type EncodedResource, encodeResource } from './codec.js';
import type { TypeUrl } from './type-urls.js';

/** Envoy JSON resources per type, as the translation layer builds them. */
export type ResourceSet = Partial<Record<TypeUrl, readonly Record<string, unknown>[]>>;

export interface TypeSnapshot {
  readonly version: string;
  readonly resources: ReadonlyMap<string, EncodedResource>;
}

/**
 * A consistent, immutable set of resources for one proxy (as in
 * go-control-plane's snapshot cache): the server only diffs versions and sends.
 */
export class Snapshot {
  private constructor(private readonly types: ReadonlyMap<TypeUrl, TypeSnapshot>) {}

  static build(set: ResourceSet): Snapshot {
    const types = new Map<TypeUrl, TypeSnapshot>();
    for (const [typeUrl, list] of Object.entries(set) as [TypeUrl, readonly Record<string, unknown>[]][]) {
      const resources = new Map<string, EncodedResource>();
      for (const json of list) {
        const encoded = encodeResource(typeUrl, json);
        if (resources.has(encoded.name)) {
          throw new Error(`duplicate ${typeUrl} resource named ${encoded.name}`);
        }
        resources.set(encoded.name, encoded);
      }
      types.set(typeUrl, { version: contentVersion(resources.values()), resources });
    }
    return new Snapshot(types);
  }

  /** Builds a snapshot from resources that are already encoded (shared between proxies). */
  static fromEncoded(set: Partial<Record<TypeUrl, readonly EncodedResource[]>>): Snapshot {
    const types = new Map<TypeUrl, TypeSnapshot>();
    for (const [typeUrl, list] of Object.entries(set) as [TypeUrl, readonly EncodedResource[]][]) {
      const resources = new Map(list.map((r) => [r.name, r] as const));
      types.set(typeUrl, { version: contentVersion(resources.values()), resources });
    }
    return new Snapshot(types);
  }

  get(typeUrl: TypeUrl): TypeSnapshot | undefined {
    return this.types.get(typeUrl);
  }

  version(typeUrl: TypeUrl): string | undefined {
    return this.types.get(typeUrl)?.version;
  }

  typeUrls(): TypeUrl[] {
    return [...this.types.keys()];
  }
}
