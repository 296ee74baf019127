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
import { bindFilterServices, type FilterServices } from '../http/filters/services.js';
import type { ListenerManager } from '../listeners/listener-manager.js';
import type { RouteStore } from '../routes/route-store.js';
import type { Secret, SecretStore } from '../security/secret-store.js';
import type { ClusterManager } from '../upstream/cluster-manager.js';
import type { AppliedConfig } from './applied-config.js';

export interface ApplierDeps {
  secrets: SecretStore;
  clusters: ClusterManager;
  listeners: ListenerManager;
  routes: RouteStore;
  applied: AppliedConfig;
  /** Updates the ADS subscription for a non-wildcard type. */
  subscribe: (typeUrl: TypeUrl, names: readonly string[]) => void;
  logger: Logger;
  /** Handed to the HTTP filters of every listener applied (rate limit counters and metrics). */
  filterServices: FilterServices;
}

interface SecretJson {
  name: string;
  tls_certificate?: {
    certificate_chain?: { inline_string?: string; inline_bytes?: string };
    private_key?: { inline_string?: string; inline_bytes?: string };
  };
  validation_context?: {
    trusted_ca?: { inline_string?: string; inline_bytes?: string };
    crl?: { inline_string?: string; inline_bytes?: string };
  };
}

function dataSource(d: { inline_string?: string; inline_bytes?: string } | undefined): string | undefined {
  if (d?.inline_string !== undefined) return d.inline_string;
  if (d?.inline_bytes !== undefined) return Buffer.from(d.inline_bytes, 'base64').toString('utf8');
  return undefined;
}

/** An SDS Secret: a certificate with its key, or trusted roots. */
function compileSecret(j: SecretJson): Secret {
  if (j.tls_certificate) {
    const certChain = dataSource(j.tls_certificate.certificate_chain);
    const privateKey = dataSource(j.tls_certificate.private_key);
    if (!certChain || !privateKey)
      throw new ConfigError(
        `secret ${j.name}: tls_certificate needs inline certificate_chain and private_key`,
      );
    return { kind: 'certificate', certChain, privateKey };
  }
  const trustedCa = dataSource(j.validation_context?.trusted_ca);
  if (!trustedCa)
    throw new ConfigError(
      `secret ${j.name}: neither a tls_certificate nor a validation_context with trusted_ca`,
    );
  const crl = dataSource(j.validation_context?.crl);
  return { kind: 'validation', trustedCa, ...(crl ? { crl } : {}) };
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
  private secretsSubscribed = false;

  constructor(private readonly deps: ApplierDeps) {}

  /** Every secret the TLS contexts need: what this process makes itself is not asked of pilot (SDS). */
  secretNames(): string[] {
    return [...new Set([...this.deps.listeners.secretNames(), ...this.deps.clusters.secretNames()])].sort();
  }

  private subscribeSecrets(): void {
    const remote = this.secretNames().filter((n) => !this.deps.secrets.isLocal(n));
    if (remote.length === 0 && !this.secretsSubscribed) return;
    this.secretsSubscribed = true;
    this.deps.secrets.retainRemote(remote);
    this.deps.applied.retain(TypeUrl.Secret, remote);
    this.deps.subscribe(TypeUrl.Secret, remote);
  }

  async apply(typeUrl: TypeUrl, resources: readonly DecodedResource[], version: string): Promise<void> {
    switch (typeUrl) {
      case TypeUrl.Cluster: {
        const clusters: ClusterConfig[] = compileAll(resources, (j: ClusterJson) => compileCluster(j));
        this.deps.clusters.applyClusters(clusters);
        const eds = this.deps.clusters.edsServiceNames();
        this.deps.applied.retain(TypeUrl.ClusterLoadAssignment, eds);
        this.deps.subscribe(TypeUrl.ClusterLoadAssignment, eds);
        this.subscribeSecrets();
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
        bindFilterServices(listeners, this.deps.filterServices);
        await this.deps.listeners.apply(listeners);
        const rds = this.deps.listeners.rdsNames();
        this.deps.routes.retainOnly(rds);
        this.deps.applied.retain(TypeUrl.RouteConfiguration, rds);
        this.deps.subscribe(TypeUrl.RouteConfiguration, rds);
        this.subscribeSecrets();
        break;
      }
      case TypeUrl.Secret: {
        const secrets = compileAll(resources, (j: SecretJson) => ({
          name: j.name,
          secret: compileSecret(j),
        }));
        this.deps.secrets.applyRemote(secrets);
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
