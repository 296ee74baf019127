import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';
import {
  buildAll,
  buildRules,
  type CaptureConfig,
  cidrFamily,
  cleanupScript,
  command,
  DEFAULT_CAPTURE,
  type Family,
  parseSave,
  renderCommands,
  restoreScript,
} from './rules.js';

export const IPTABLES_USAGE = `usage: sidecar-agent iptables [-p 15001] [-z 15006] [-e 15008] [-u 1337] [-g 1337] [-m REDIRECT]
         [-b PORTS|'*'] [-d PORTS] [-i CIDRS|'*'] [-x CIDRS] [-q PORTS] [-o PORTS] [-c IFACES]
         [--ipv6] [--dry-run] [--cleanup]

Installs Istio's transparent-capture rules in this network namespace's nat
table (what the init container runs before the sidecar starts), as
istio-iptables does: outbound TCP to -p, inbound TCP to -z, the proxy's own
uid/gid never captured. Re-running replaces the rules; --cleanup removes them.

  -p, --envoy-port PORT                          outbound capture port (15001)
  -z, --inbound-capture-port PORT                inbound capture port (15006)
  -e, --inbound-tunnel-port PORT                 never captured inbound (15008)
  -u, --proxy-uid UIDS                           the proxy's uid(s), comma-separated (1337)
  -g, --proxy-gid GIDS                           the proxy's gid(s) (1337)
  -m, --istio-inbound-interception-mode MODE     REDIRECT (TPROXY is not supported)
  -b, --istio-inbound-ports PORTS                inbound ports to capture, '*' for all ("" = none)
  -d, --istio-local-exclude-ports PORTS          with -b '*', inbound ports left alone
  -i, --istio-service-cidr CIDRS                 outbound destinations to capture, '*' for all
  -x, --istio-service-exclude-cidr CIDRS         outbound destinations left alone
  -q, --istio-outbound-ports PORTS               outbound ports always captured
  -o, --istio-local-outbound-ports-exclude PORTS outbound ports left alone
  -c, --istio-exclude-interfaces IFACES          interfaces left alone
      --ipv6                                     also write the ip6tables rules
  -n, --dry-run                                  print the rules, change nothing
      --cleanup                                  remove the rules`;

/** A bad flag value: the message names the flag. */
export class IptablesFlagError extends Error {}

function port(value: string, flag: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > 65535)
    throw new IptablesFlagError(`${flag} must be a port number (1-65535), got "${value}"`);
  return n;
}

function list(value: string | undefined): string[] {
  return (value ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function ports(value: string | undefined, flag: string): number[] {
  return list(value).map((p) => port(p, flag));
}

function ids(value: string | undefined, flag: string, fallback: string[]): string[] {
  if (value === undefined) return fallback;
  const out = list(value);
  for (const id of out)
    if (!/^\d+$/.test(id)) throw new IptablesFlagError(`${flag} must be numeric ids, got "${id}"`);
  if (out.length === 0) throw new IptablesFlagError(`${flag} must name at least one id`);
  return out;
}

function cidrs(value: string | undefined, flag: string): string[] {
  const out = list(value);
  for (const c of out) {
    const [ip, len, ...rest] = c.split('/');
    const family = cidrFamily(ip ?? '');
    const max = family === 4 ? 32 : 128;
    const ok =
      family !== undefined && rest.length === 0 && (len === undefined || (/^\d+$/.test(len) && +len <= max));
    if (!ok) throw new IptablesFlagError(`${flag}: "${c}" is not an IP address or CIDR`);
  }
  // A bare address means that one host, as iptables reads it.
  return out.map((c) => (c.includes('/') ? c : `${c}/${cidrFamily(c) === 4 ? 32 : 128}`));
}

const INTERFACE = /^[A-Za-z0-9_.:+-]{1,15}$/;

export interface IptablesInvocation {
  config: CaptureConfig;
  dryRun: boolean;
  cleanup: boolean;
  help: boolean;
}

/** Parses istio-iptables' flags. */
export function parseIptablesFlags(argv: string[]): IptablesInvocation {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        'envoy-port': { type: 'string', short: 'p' },
        'inbound-capture-port': { type: 'string', short: 'z' },
        'inbound-tunnel-port': { type: 'string', short: 'e' },
        'proxy-uid': { type: 'string', short: 'u' },
        'proxy-gid': { type: 'string', short: 'g' },
        'istio-inbound-interception-mode': { type: 'string', short: 'm' },
        'istio-inbound-ports': { type: 'string', short: 'b' },
        'istio-local-exclude-ports': { type: 'string', short: 'd' },
        'istio-service-cidr': { type: 'string', short: 'i' },
        'istio-service-exclude-cidr': { type: 'string', short: 'x' },
        'istio-outbound-ports': { type: 'string', short: 'q' },
        'istio-local-outbound-ports-exclude': { type: 'string', short: 'o' },
        'istio-exclude-interfaces': { type: 'string', short: 'c' },
        ipv6: { type: 'boolean' },
        'dry-run': { type: 'boolean', short: 'n' },
        cleanup: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new IptablesFlagError((err as Error).message);
  }
  const s = (k: string) => values[k] as string | undefined;
  const mode = s('istio-inbound-interception-mode') ?? 'REDIRECT';
  if (mode !== 'REDIRECT') {
    throw new IptablesFlagError(
      `-m/--istio-inbound-interception-mode ${mode} is not supported: only REDIRECT (TPROXY needs original_src, which this proxy does not implement)`,
    );
  }
  const inbound = s('istio-inbound-ports');
  const include = s('istio-service-cidr');
  const interfaces = list(s('istio-exclude-interfaces'));
  for (const i of interfaces)
    if (!INTERFACE.test(i)) throw new IptablesFlagError(`-c: "${i}" is not an interface name`);
  const config: CaptureConfig = {
    proxyPort: port(s('envoy-port') ?? String(DEFAULT_CAPTURE.proxyPort), '-p/--envoy-port'),
    inboundCapturePort: port(
      s('inbound-capture-port') ?? String(DEFAULT_CAPTURE.inboundCapturePort),
      '-z/--inbound-capture-port',
    ),
    inboundTunnelPort: port(
      s('inbound-tunnel-port') ?? String(DEFAULT_CAPTURE.inboundTunnelPort),
      '-e/--inbound-tunnel-port',
    ),
    proxyUids: ids(s('proxy-uid'), '-u/--proxy-uid', DEFAULT_CAPTURE.proxyUids),
    proxyGids: ids(s('proxy-gid'), '-g/--proxy-gid', DEFAULT_CAPTURE.proxyGids),
    inboundPortsInclude: inbound?.trim() === '*' ? '*' : ports(inbound, '-b/--istio-inbound-ports'),
    inboundPortsExclude: ports(s('istio-local-exclude-ports'), '-d/--istio-local-exclude-ports'),
    outboundIpRangesInclude: include?.trim() === '*' ? '*' : cidrs(include, '-i/--istio-service-cidr'),
    outboundIpRangesExclude: cidrs(s('istio-service-exclude-cidr'), '-x/--istio-service-exclude-cidr'),
    outboundPortsInclude: ports(s('istio-outbound-ports'), '-q/--istio-outbound-ports'),
    outboundPortsExclude: ports(
      s('istio-local-outbound-ports-exclude'),
      '-o/--istio-local-outbound-ports-exclude',
    ),
    excludeInterfaces: interfaces,
    ipv6: values.ipv6 === true,
  };
  if (config.proxyPort === config.inboundCapturePort)
    throw new IptablesFlagError('-p and -z must be different ports');
  return {
    config,
    dryRun: values['dry-run'] === true,
    cleanup: values.cleanup === true,
    help: values.help === true,
  };
}

/** Runs one iptables tool; a missing tool or a failure becomes one sentence. */
function tool(name: string, args: string[], input?: string): string {
  const r = spawnSync(name, args, { input, encoding: 'utf8', timeout: 30_000 });
  if (r.error) {
    const code = (r.error as NodeJS.ErrnoException).code;
    throw new Error(
      code === 'ENOENT'
        ? `${name} is not installed (Debian: apt-get install -y iptables)`
        : `${name} could not run: ${r.error.message}`,
    );
  }
  if (r.status !== 0) {
    const why = (r.stderr || r.stdout).trim().split('\n').filter(Boolean).slice(0, 3).join('; ');
    throw new Error(`${name} ${args.join(' ')} failed (exit ${r.status}): ${why || 'no message'}`);
  }
  return r.stdout;
}

function saved(family: Family) {
  return parseSave(tool(`${command(family)}-save`, ['-t', 'nat']));
}

export interface CommandIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

/** `sidecar-agent iptables ...`: returns the exit code (0 done, 1 iptables failed, 2 bad flags). */
export function runIptablesCommand(argv: string[], io: CommandIo): number {
  let inv: IptablesInvocation;
  try {
    inv = parseIptablesFlags(argv);
  } catch (err) {
    io.err(`sidecar-agent iptables: ${(err as Error).message}`);
    io.err(IPTABLES_USAGE);
    return 2;
  }
  if (inv.help) {
    io.out(IPTABLES_USAGE);
    return 0;
  }
  const families: Family[] = inv.config.ipv6 ? [4, 6] : [4];
  try {
    if (inv.cleanup) {
      for (const family of families) {
        const ours = buildRules(inv.config, family).rules;
        const script = cleanupScript(saved(family), ours);
        if (inv.dryRun) {
          io.out(`# ${command(family)}-restore --noflush <<EOF`);
          for (const line of script.trimEnd().split('\n')) io.out(line);
          io.out('# EOF');
        } else {
          tool(`${command(family)}-restore`, ['--noflush'], script);
          io.out(`${command(family)}: removed the ISTIO_ chains and the jumps into them`);
        }
      }
      return 0;
    }
    for (const set of buildAll(inv.config)) {
      for (const line of renderCommands(set)) io.out(line);
      if (inv.dryRun) continue;
      tool(`${command(set.family)}-restore`, ['--noflush'], restoreScript(set, saved(set.family)));
      io.out(`${command(set.family)}: capture rules installed (nat table)`);
    }
    return 0;
  } catch (err) {
    io.err(`sidecar-agent iptables: ${(err as Error).message}`);
    return 1;
  }
}
