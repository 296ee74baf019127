import { CliError } from '../errors.js';
import { formatTable } from '../output/table.js';
import { pilotRequest, pilotUrl } from '../pilot-client.js';
import { fetchConfigDump } from '../proxy/admin-client.js';
import { compareConfig, formatComparison, type PilotDump } from '../proxy/compare.js';
import { locateProxy, type ProxySelection } from '../proxy/locate.js';
import { proxyName } from '../proxy/resolve.js';
import { nackReasons, STATUS_HEADERS, statusRow } from '../proxy/sync-status.js';
import { fetchSyncz } from '../syncz.js';

/** `mizzen proxy-status`: every proxy's xDS sync state at pilot, one row each, then why any rejected config. */
async function statusTable(pilot: string, out: NodeJS.WritableStream): Promise<void> {
  const entries = (await fetchSyncz(pilot)).sort((a, b) =>
    proxyName(a.proxy).localeCompare(proxyName(b.proxy)),
  );
  out.write(`${formatTable(STATUS_HEADERS, entries.map(statusRow), { empty: '' })}\n`);
  const reasons = nackReasons(entries);
  if (reasons.length) out.write(`\n${reasons.join('\n')}\n`);
}

/** `mizzen proxy-status PROXY`: what pilot last sent it against what it runs, type by type. */
async function compareOne(sel: ProxySelection, out: NodeJS.WritableStream): Promise<void> {
  const { entry, target } = await locateProxy(sel);
  if (!entry) throw new CliError('proxy-status: name the proxy to compare (--admin alone says not which)', 2);
  const pilot = pilotUrl(sel.pilot);
  const { status, body } = await pilotRequest<PilotDump & { error?: string }>(
    pilot,
    `/debug/config_dump?proxyID=${encodeURIComponent(entry.proxy)}&names=proto`,
  );
  if (status !== 200)
    throw new CliError(
      `pilot at ${pilot} has no config for ${entry.proxy}: ${body.error ?? `status ${status}`}`,
    );
  const running = await fetchConfigDump(target);
  out.write(formatComparison(compareConfig(body, running), running));
}

export async function proxyStatus(sel: ProxySelection, out: NodeJS.WritableStream): Promise<void> {
  if (sel.proxy) await compareOne(sel, out);
  else await statusTable(pilotUrl(sel.pilot), out);
}
