import { isAlive } from '@mizzen/runtime';
import { CliError } from '../errors.js';
import { readState } from '../local/state.js';
import { formatTable } from '../output/table.js';
import { pilotUrl } from '../pilot-client.js';
import { fetchSyncz, type SyncEntry } from '../syncz.js';

export interface StatusReport {
  components: { name: string; pid: number; running: boolean; ports: Record<string, number> }[];
  proxies: {
    id: string;
    kind: 'sidecar' | 'ingress' | 'egress' | 'grpc';
    workload?: string;
    namespace?: string;
    serviceAccount?: string;
    ports: Record<string, number | undefined>;
    sync: Record<string, string>;
    errors?: Record<string, string>;
    /** Gateway servers left closed (a missing credential…) or overlapping another Gateway, and why. */
    warnings?: string[];
  }[];
}

function proxyKind(e: SyncEntry): StatusReport['proxies'][number]['kind'] {
  if (e.proxy_type === 'grpc') return 'grpc';
  if (e.proxy_type === 'router') return e.workload?.includes('egress') ? 'egress' : 'ingress';
  return 'sidecar';
}

export async function collectStatus(pilot?: string): Promise<StatusReport> {
  const state = readState();
  const components = (state?.components ?? []).map((c) => ({
    name: c.name,
    pid: c.pid,
    running: isAlive(c.pid),
    ports: c.ports,
  }));
  const proxies = (await fetchSyncz(pilotUrl(pilot))).map((e) => ({
    id: e.proxy,
    kind: proxyKind(e),
    workload: e.workload,
    namespace: e.namespace,
    serviceAccount: e.service_account,
    ports: {
      admin: e.ports?.admin,
      health: e.ports?.health,
      stats: e.ports?.stats,
      inbound: e.ports?.inbound?.[0]?.listenPort,
      outbound: e.ports?.outbound,
      ...(e.ports?.gateway
        ? Object.fromEntries(Object.entries(e.ports.gateway).map(([k, v]) => [`service-${k}`, v]))
        : {}),
    },
    sync: e.sync ?? {},
    ...(e.errors ? { errors: e.errors } : {}),
    ...(e.warnings?.length ? { warnings: e.warnings } : {}),
  }));
  proxies.sort((a, b) => (a.id < b.id ? -1 : 1));
  return { components, proxies };
}

function clean<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

export async function status(
  opts: { output?: string; pilot?: string },
  out: NodeJS.WritableStream,
): Promise<void> {
  const report = await collectStatus(opts.pilot);
  if (opts.output === 'json') {
    const json = { ...report, proxies: report.proxies.map((p) => ({ ...p, ports: clean(p.ports) })) };
    out.write(`${JSON.stringify(json, null, 2)}\n`);
    return;
  }
  if (opts.output) throw new CliError(`unknown output format "${opts.output}" (use json)`, 2);
  if (report.components.length) {
    out.write(
      `${formatTable(
        ['COMPONENT', 'PID', 'STATE', 'PORTS'],
        report.components.map((c) => [
          c.name,
          c.pid,
          c.running ? 'running' : 'exited',
          Object.entries(c.ports)
            .map(([k, v]) => `${k}=${v}`)
            .join(' '),
        ]),
      )}\n\n`,
    );
  }
  const types = ['CDS', 'LDS', 'EDS', 'RDS'];
  out.write(
    `${formatTable(
      ['PROXY', 'KIND', ...types],
      report.proxies.map((p) => [p.id, p.kind, ...types.map((t) => p.sync[t] ?? 'NOT SENT')]),
    )}\n`,
  );
  for (const p of report.proxies) {
    for (const [t, e] of Object.entries(p.errors ?? {})) out.write(`${p.id}: ${t} rejected: ${e}\n`);
    for (const w of p.warnings ?? []) out.write(`${p.id}: ${w}\n`);
  }
}
