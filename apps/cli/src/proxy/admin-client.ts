import { CliError } from '../errors.js';
import { requestJson } from '../http-json.js';
import type { SyncEntry } from '../syncz.js';
import type { ConfigDump } from './config-dump.js';
import { proxyName } from './resolve.js';
import type { ClusterStatuses } from './summary/endpoints.js';

/** One proxy's admin API: its base URL and a name for messages. */
export interface AdminTarget {
  base: string;
  name: string;
}

/** Where a proxy's admin API is: `--admin URL` when given, else the address pilot's syncz reports for it. */
export function adminTarget(entry: SyncEntry | undefined, flag: string | undefined): AdminTarget {
  const name = entry ? proxyName(entry.proxy) : 'the proxy';
  if (flag) return { base: flag.replace(/\/+$/, ''), name };
  if (!entry) throw new CliError('name a proxy, or give its admin API with --admin URL', 2);
  if (!entry.admin)
    throw new CliError(
      `pilot reports no admin address for proxy ${entry.proxy} (a proxyless gRPC client has none); pass --admin URL`,
    );
  return { base: `http://${entry.admin}`, name };
}

async function adminGet<T>(target: AdminTarget, path: string): Promise<T> {
  const { status, body } = await requestJson<T>(`${target.base}${path}`, {
    who: `the admin API of ${target.name} at ${target.base}`,
    unreachable: (reason) =>
      `cannot reach the admin API of ${target.name} at ${target.base} (${reason}); is the proxy running?`,
  });
  if (status !== 200)
    throw new CliError(`the admin API of ${target.name} at ${target.base} answered ${status} to ${path}`);
  return body;
}

/** What the proxy runs: its `/config_dump`, with endpoints when asked. */
export function fetchConfigDump(target: AdminTarget, includeEds = false): Promise<ConfigDump> {
  return adminGet<ConfigDump>(target, includeEds ? '/config_dump?include_eds' : '/config_dump');
}

/** Its clusters' hosts with health and outlier state: `/clusters?format=json`. */
export function fetchClusterStatuses(target: AdminTarget): Promise<ClusterStatuses> {
  return adminGet<ClusterStatuses>(target, '/clusters?format=json');
}
