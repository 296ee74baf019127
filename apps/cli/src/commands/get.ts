import { type RateLimitPolicySpec, resolveKind } from '@mizzen/api';
import { CliError } from '../errors.js';
import { structuredFormat, unknownOutput, writeStructured } from '../output/structured.js';
import { age, formatTable } from '../output/table.js';
import { pilotRequest, pilotUrl } from '../pilot-client.js';

// biome-ignore lint/suspicious/noExplicitAny: resources are shown as they come from pilot
type Item = { kind: string; metadata: any; spec: any; source?: string };

function list(v: unknown): string {
  return Array.isArray(v) && v.length ? v.join(',') : '';
}

/** Per-kind columns, close to what `kubectl get` prints for Istio's CRDs. */
const COLUMNS: Record<string, { headers: string[]; row: (i: Item) => (string | undefined)[] }> = {
  VirtualService: { headers: ['GATEWAYS', 'HOSTS'], row: (i) => [list(i.spec.gateways), list(i.spec.hosts)] },
  DestinationRule: { headers: ['HOST'], row: (i) => [i.spec.host] },
  Gateway: {
    headers: ['SERVERS'],
    row: (i) => [(i.spec.servers ?? []).map((s: any) => `${s.port?.protocol}/${s.port?.number}`).join(',')],
  },
  ServiceEntry: {
    headers: ['HOSTS', 'LOCATION', 'RESOLUTION'],
    row: (i) => [list(i.spec.hosts), i.spec.location, i.spec.resolution],
  },
  WorkloadEntry: { headers: ['ADDRESS'], row: (i) => [i.spec.address] },
  RateLimitPolicy: { headers: ['MODE', 'TARGET', 'LIMITS'], row: (i) => rateLimitColumns(i.spec) },
};

/** `GLOBAL`, `gateway=istio=ingressgateway` or `Gateway/bookinfo`, `100/minute,10/second`. */
function rateLimitColumns(spec: RateLimitPolicySpec): string[] {
  const target = spec.targetRefs?.length
    ? spec.targetRefs.map((r) => `${r.kind}/${r.name}`)
    : Object.entries(spec.selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  return [
    `${spec.mode ?? 'GLOBAL'}${spec.shadow ? ' (shadow)' : ''}`,
    target.join(','),
    (spec.rules ?? []).map((r) => `${r.limit.requests}/${r.limit.unit.toLowerCase()}`).join(','),
  ];
}

export async function get(
  kindArg: string | undefined,
  name: string | undefined,
  opts: { namespace?: string; allNamespaces?: boolean; output?: string; pilot?: string },
  out: NodeJS.WritableStream,
): Promise<void> {
  if (!kindArg) throw new CliError('usage: mizzen get KIND [NAME] [-n NAMESPACE | -A] [-o yaml|json]', 2);
  const kind = resolveKind(kindArg);
  if (!kind) throw new CliError(`the server doesn't have a resource type "${kindArg}"`);
  const namespace = opts.allNamespaces ? undefined : (opts.namespace ?? 'default');
  const query = new URLSearchParams({ kind });
  if (namespace) query.set('namespace', namespace);
  if (name) query.set('name', name);
  const { status, body } = await pilotRequest<{ items?: Item[]; errors?: string[] }>(
    pilotUrl(opts.pilot),
    `/apis/config?${query}`,
  );
  if (status !== 200) throw new CliError((body.errors ?? [`pilot answered ${status}`]).join('\n'));
  const items = body.items ?? [];
  if (name && items.length === 0)
    throw new CliError(`${kind.toLowerCase()} "${name}" not found in namespace ${namespace ?? '(all)'}`);
  const format = structuredFormat(opts.output);
  if (format) {
    writeStructured(out, name ? items[0] : { apiVersion: 'v1', kind: 'List', items }, format);
    return;
  }
  if (opts.output && opts.output !== 'wide') throw unknownOutput(opts.output, 'yaml, json or wide');
  if (items.length === 0) {
    out.write(`No resources found${namespace ? ` in ${namespace} namespace` : ''}.\n`);
    return;
  }
  const cols = COLUMNS[kind] ?? { headers: [], row: () => [] };
  const headers = [...(opts.allNamespaces ? ['NAMESPACE'] : []), 'NAME', ...cols.headers, 'SOURCE', 'AGE'];
  const rows = items.map((i) => [
    ...(opts.allNamespaces ? [i.metadata.namespace] : []),
    i.metadata.name,
    ...cols.row(i),
    i.source?.startsWith('store:') ? 'applied' : 'config-dir',
    age(i.metadata.creationTimestamp),
  ]);
  out.write(`${formatTable(headers, rows)}\n`);
}
