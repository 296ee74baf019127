import { CliError } from '../errors.js';
import { pilotUrl } from '../pilot-client.js';
import { fetchSyncz, type SyncEntry } from '../syncz.js';
import { type AdminTarget, adminTarget } from './admin-client.js';
import { resolveProxy } from './resolve.js';

export interface ProxySelection {
  /** What the user typed: a workload or pod name, `name.namespace`, or a node id. */
  proxy?: string;
  namespace?: string;
  /** `--admin URL`: the proxy's admin API, without asking pilot where it is. */
  admin?: string;
  pilot?: string;
}

/**
 * The proxy a command is about and its admin API: `--admin` as given, or the
 * proxy pilot knows by the name the user typed (its entry in /debug/syncz).
 */
export async function locateProxy(sel: ProxySelection): Promise<{ entry?: SyncEntry; target: AdminTarget }> {
  if (sel.admin) {
    const target = adminTarget(undefined, sel.admin);
    return { target: sel.proxy ? { ...target, name: sel.proxy } : target };
  }
  if (!sel.proxy) throw new CliError('name a proxy: a workload name, name.namespace or its node id', 2);
  const pilot = pilotUrl(sel.pilot);
  const entry = resolveProxy(sel.proxy, await fetchSyncz(pilot), { namespace: sel.namespace, pilot });
  return { entry, target: adminTarget(entry, undefined) };
}
