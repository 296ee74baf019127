import type { KnownService, Workload } from '@mizzen/analysis';
import type { ConfigResource, ValidationIssue } from '@mizzen/api';
import { CliError } from '../errors.js';
import { pilotRequest } from '../pilot-client.js';

/** The running mesh as pilot knows it: what `mizzen analyze` analyzes without --use-kube=false. */
export interface LiveConfig {
  resources: ConfigResource[];
  /** Problems in the config directory pilot reads (those resources it left out). */
  issues: ValidationIssue[];
  services: KnownService[];
  workloads: Workload[];
}

interface RegistryEntry {
  hostname: string;
  namespace: string;
  endpoints?: Record<
    string,
    { labels?: Record<string, string>; workload?: { name: string; namespace: string } }[]
  >;
}

async function get<T>(base: string, path: string): Promise<T> {
  const { status, body } = await pilotRequest<T & { errors?: string[] }>(base, path);
  if (status !== 200) throw new CliError(`pilot at ${base} answered ${status} to ${path}`);
  return body;
}

/** The workloads behind the registry's endpoints: each named workload once, with its labels. */
function workloadsOf(registry: readonly RegistryEntry[]): Workload[] {
  const byName = new Map<string, Workload>();
  for (const service of registry)
    for (const endpoints of Object.values(service.endpoints ?? {}))
      for (const e of endpoints) {
        if (!e.workload) continue;
        const key = `${e.workload.namespace}/${e.workload.name}`;
        if (!byName.has(key)) byName.set(key, { ...e.workload, labels: e.labels ?? {} });
      }
  return [...byName.values()];
}

/** Reads the live config, its validation problems and the service registry through pilot's HTTP API. */
export async function readLiveConfig(base: string): Promise<LiveConfig> {
  const [config, configz, registry] = await Promise.all([
    get<{ items?: (ConfigResource & { source?: string })[] }>(base, '/apis/config'),
    get<{ issues?: ValidationIssue[] }>(base, '/debug/configz'),
    get<RegistryEntry[]>(base, '/debug/registryz'),
  ]);
  return {
    resources: (config.items ?? []).map(({ source: _source, ...r }) => r as ConfigResource),
    issues: configz.issues ?? [],
    services: registry.map((s) => ({ hostname: s.hostname, namespace: s.namespace })),
    workloads: workloadsOf(registry),
  };
}
