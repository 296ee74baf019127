import type { Logger } from '@mizzen/runtime';
import { type DecodedResource, shortType, TypeUrl } from '@mizzen/xds';
import { type ClusterConfig, compileCluster, compileLoadAssignment } from '../config/cluster.js';
import { ConfigError } from '../config/errors.js';
import { compileListener, type ListenerConfig } from '../config/listener.js';
import { RouteTable } from '../config/route-table.js';
import type {
  ClusterJson,
  ClusterLoadAssignmentJson,
  ListenerJson,
  RouteConfigurationJson,
} from '../envoy/types.js';
import type { ListenerManager } from '../listeners/listener-manager.js';
import type { RouteStore } from '../routes/route-store.js';
import type { ClusterManager } from '../upstream/cluster-manager.js';
import type { AppliedConfig } from './applied-config.js';

export interface ApplierDeps {
  clusters: ClusterManager;
  listeners: ListenerManager;
  routes: RouteStore;
  applied: AppliedConfig;
  /** Updates the ADS subscription for a non-wildcard type. */
  subscribe: (typeUrl: TypeUrl, names: readonly string[]) => void;
  logger: Logger;
}

/** Compiles every resource first, so one bad resource rejects the whole response and nothing changes. */
function compileAll<T>(resources: readonly DecodedResource[], compile: (json: never) => T): T[] {
  return resources.map((r) => {
    try {
      return compile(r.json as never);
    } catch (err) {
      if (err instanceof ConfigError) throw err;
      throw new ConfigError(`${shortType(r.typeUrl)} ${r.name}: ${(err as Error).message}`);
    }
  });
}

/**
 * Applies one xDS response to the running proxy. Throwing rejects it (the ADS
 * client NACKs with the message) and leaves the proxy on its last good config.
 */
export class ConfigApplier {
  constructor(private readonly deps: ApplierDeps) {}

  async apply(typeUrl: TypeUrl, resources: readonly DecodedResource[], version: string): Promise<void> {
    switch (typeUrl) {
      case TypeUrl.Cluster: {
        const clusters: ClusterConfig[] = compileAll(resources, (j: ClusterJson) => compileCluster(j));
        this.deps.clusters.applyClusters(clusters);
        const eds = this.deps.clusters.edsServiceNames();
        this.deps.applied.retain(TypeUrl.ClusterLoadAssignment, eds);
        this.deps.subscribe(TypeUrl.ClusterLoadAssignment, eds);
        break;
      }
      case TypeUrl.ClusterLoadAssignment: {
        const assignments = compileAll(resources, (j: ClusterLoadAssignmentJson) => ({
          name: j.cluster_name,
          endpoints: compileLoadAssignment(j, `endpoints ${j.cluster_name}`),
        }));
        this.deps.clusters.applyEndpoints(assignments);
        break;
      }
      case TypeUrl.Listener: {
        const listeners: ListenerConfig[] = compileAll(resources, (j: ListenerJson) => compileListener(j));
        await this.deps.listeners.apply(listeners);
        const rds = this.deps.listeners.rdsNames();
        this.deps.routes.retainOnly(rds);
        this.deps.applied.retain(TypeUrl.RouteConfiguration, rds);
        this.deps.subscribe(TypeUrl.RouteConfiguration, rds);
        break;
      }
      case TypeUrl.RouteConfiguration: {
        const tables = compileAll(resources, (j: RouteConfigurationJson) => RouteTable.compile(j));
        this.deps.routes.apply(tables);
        break;
      }
      default:
        throw new ConfigError(`resource type ${typeUrl} is not supported by this proxy`);
    }
    this.deps.applied.record(typeUrl, version, resources);
    this.deps.logger.debug(
      { type: shortType(typeUrl), version, resources: resources.length },
      'applied config',
    );
  }
}
