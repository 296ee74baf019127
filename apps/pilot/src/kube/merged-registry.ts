import {
  type Endpoint,
  type Registry,
  type Service,
  type ServiceTarget,
  sortTargets,
} from '../registry/model.js';

/**
 * Several registries seen as one (Istio's aggregate controller): for a
 * hostname several registries define, the first registry that has it wins,
 * services and endpoints alike. Pilot lists Kubernetes first, then the
 * registry built from ServiceEntries and WorkloadEntries.
 */
export class MergedRegistry implements Registry {
  private readonly byHost = new Map<string, { service: Service; owner: Registry }>();

  constructor(private readonly registries: readonly Registry[]) {
    for (const registry of registries) {
      for (const service of registry.services()) {
        if (!this.byHost.has(service.hostname))
          this.byHost.set(service.hostname, { service, owner: registry });
      }
    }
  }

  services(): readonly Service[] {
    return [...this.byHost.values()].map((e) => e.service);
  }

  service(hostname: string): Service | undefined {
    return this.byHost.get(hostname)?.service;
  }

  endpoints(hostname: string, port: number): readonly Endpoint[] {
    return this.byHost.get(hostname)?.owner.endpoints(hostname, port) ?? [];
  }

  /** Each registry's targets for the hostnames it owns here. */
  serviceTargets(address: string): readonly ServiceTarget[] {
    return sortTargets(
      this.registries.flatMap((owner) =>
        owner.serviceTargets(address).filter((t) => this.byHost.get(t.hostname)?.owner === owner),
      ),
    );
  }
}

/** One registry from several; a single registry is returned as it is. */
export function mergeRegistries(registries: readonly Registry[]): Registry {
  return registries.length === 1 ? registries[0]! : new MergedRegistry(registries);
}
