import net from 'node:net';

/**
 * The nat-table rules Istio's init container (`istio-iptables`) writes for a
 * sidecar in REDIRECT mode, as pure data: outbound TCP to the proxy's
 * outbound port (15001), inbound TCP to its inbound capture port (15006),
 * the proxy's own traffic (by uid/gid) left alone, loopback handled as Istio
 * does. Generation is separate from running iptables so it is tested as a
 * table.
 */

export const ISTIO_INBOUND = 'ISTIO_INBOUND';
export const ISTIO_REDIRECT = 'ISTIO_REDIRECT';
export const ISTIO_IN_REDIRECT = 'ISTIO_IN_REDIRECT';
export const ISTIO_OUTPUT = 'ISTIO_OUTPUT';
/** The chains Istio creates in the nat table, in its order. */
export const ISTIO_CHAINS = [ISTIO_INBOUND, ISTIO_REDIRECT, ISTIO_IN_REDIRECT, ISTIO_OUTPUT] as const;

/** Where the inbound passthrough cluster binds its source address (Istio's 127.0.0.6 / ::6). */
const INBOUND_PASSTHROUGH_SOURCE = { 4: '127.0.0.6/32', 6: '::6/128' } as const;
const LOOPBACK = { 4: '127.0.0.1/32', 6: '::1/128' } as const;

export type Family = 4 | 6;

/** What to capture; the fields are Istio's istio-iptables flags. */
export interface CaptureConfig {
  /** -p: where outbound TCP is redirected (the sidecar's virtualOutbound). */
  proxyPort: number;
  /** -z: where inbound TCP is redirected (virtualInbound). */
  inboundCapturePort: number;
  /** -e: the HBONE tunnel port, never captured inbound. */
  inboundTunnelPort: number;
  /** -u: the proxy's uids; their traffic is not captured. */
  proxyUids: string[];
  /** -g: the proxy's gids. */
  proxyGids: string[];
  /** -b: inbound ports to capture, or '*' for all. Empty captures no inbound traffic. */
  inboundPortsInclude: '*' | number[];
  /** -d: with -b '*', inbound ports not captured (the proxy's own: 15090, 15021, 15020). */
  inboundPortsExclude: number[];
  /** -i: outbound destinations to capture (CIDRs), or '*' for all. */
  outboundIpRangesInclude: '*' | string[];
  /** -x: outbound destinations never captured. */
  outboundIpRangesExclude: string[];
  /** -q: outbound ports always captured, whatever the destination. */
  outboundPortsInclude: number[];
  /** -o: outbound ports never captured. */
  outboundPortsExclude: number[];
  /** -c: interfaces whose traffic is never captured. */
  excludeInterfaces: string[];
  /** Also write the rules for IPv6 (ip6tables). */
  ipv6: boolean;
}

export const DEFAULT_CAPTURE: CaptureConfig = {
  proxyPort: 15001,
  inboundCapturePort: 15006,
  inboundTunnelPort: 15008,
  proxyUids: ['1337'],
  proxyGids: ['1337'],
  inboundPortsInclude: [],
  inboundPortsExclude: [],
  outboundIpRangesInclude: [],
  outboundIpRangesExclude: [],
  outboundPortsInclude: [],
  outboundPortsExclude: [],
  excludeInterfaces: [],
  ipv6: false,
};

/** One `-A CHAIN ...` rule of the nat table. */
export interface Rule {
  chain: string;
  args: string[];
}

/** The rules for one address family. */
export interface RuleSet {
  family: Family;
  table: 'nat';
  chains: readonly string[];
  rules: Rule[];
}

export function cidrFamily(cidr: string): Family | undefined {
  const slash = cidr.indexOf('/');
  const ip = slash < 0 ? cidr : cidr.slice(0, slash);
  const v = net.isIP(ip);
  return v === 4 ? 4 : v === 6 ? 6 : undefined;
}

function isLoopbackCidr(cidr: string): boolean {
  const ip = cidr.split('/')[0]!;
  return /^127\./.test(ip) || ip === '::1';
}

/** The rules istio-iptables appends for `family`, in its order. */
export function buildRules(cfg: CaptureConfig, family: Family): RuleSet {
  const rules: Rule[] = [];
  const add = (chain: string, ...args: string[]) => rules.push({ chain, args });
  const tcpPort = (port: number) => ['-p', 'tcp', '--dport', String(port)];
  const ofFamily = (list: readonly string[]) => list.filter((c) => cidrFamily(c) === family);
  const loopback = LOOPBACK[family];

  for (const iface of cfg.excludeInterfaces) {
    add('PREROUTING', '-i', iface, '-j', 'RETURN');
    add('OUTPUT', '-o', iface, '-j', 'RETURN');
  }

  add(ISTIO_INBOUND, ...tcpPort(cfg.inboundTunnelPort), '-j', 'RETURN');
  add(ISTIO_REDIRECT, '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(cfg.proxyPort));
  add(ISTIO_IN_REDIRECT, '-p', 'tcp', '-j', 'REDIRECT', '--to-ports', String(cfg.inboundCapturePort));

  // Inbound: everything (less the excluded ports) or the listed ports go to the inbound capture port.
  const inbound = cfg.inboundPortsInclude;
  if (inbound === '*' || inbound.length > 0) {
    add('PREROUTING', '-p', 'tcp', '-j', ISTIO_INBOUND);
    if (inbound === '*') {
      for (const port of cfg.inboundPortsExclude) add(ISTIO_INBOUND, ...tcpPort(port), '-j', 'RETURN');
      add(ISTIO_INBOUND, '-p', 'tcp', '-j', ISTIO_IN_REDIRECT);
    } else {
      for (const port of inbound) add(ISTIO_INBOUND, ...tcpPort(port), '-j', ISTIO_IN_REDIRECT);
    }
  }

  add('OUTPUT', '-p', 'tcp', '-j', ISTIO_OUTPUT);
  // Port exclusions come before connections back to self are redirected.
  for (const port of cfg.outboundPortsExclude) add(ISTIO_OUTPUT, ...tcpPort(port), '-j', 'RETURN');
  // The inbound passthrough cluster's connections to the app (source 127.0.0.6) are never captured.
  add(ISTIO_OUTPUT, '-o', 'lo', '-s', INBOUND_PASSTHROUGH_SOURCE[family], '-j', 'RETURN');

  const include = cfg.outboundIpRangesInclude;
  const includesLoopback = include !== '*' && include.some(isLoopbackCidr);
  for (const [flag, ids] of [
    ['--uid-owner', cfg.proxyUids],
    ['--gid-owner', cfg.proxyGids],
  ] as const) {
    for (const id of ids) {
      // The proxy calling its own pod IP over lo (app → VIP → proxy → pod IP): that is inbound traffic.
      add(
        ISTIO_OUTPUT,
        '-o',
        'lo',
        '!',
        '-d',
        loopback,
        '-p',
        'tcp',
        '!',
        '--dport',
        String(cfg.inboundTunnelPort),
        '-m',
        'owner',
        flag,
        id,
        '-j',
        ISTIO_IN_REDIRECT,
      );
      // The app calling itself over lo by its own address is not captured (unless loopback is included).
      if (!includesLoopback) add(ISTIO_OUTPUT, '-o', 'lo', '-m', 'owner', '!', flag, id, '-j', 'RETURN');
      // Never capture the proxy's own traffic: that would loop.
      add(ISTIO_OUTPUT, '-m', 'owner', flag, id, '-j', 'RETURN');
    }
  }

  // Applications talking to localhost (the proxy's admin, their own sidecar-aware clients) are left alone.
  add(ISTIO_OUTPUT, '-d', loopback, '-j', 'RETURN');
  for (const cidr of ofFamily(cfg.outboundIpRangesExclude)) add(ISTIO_OUTPUT, '-d', cidr, '-j', 'RETURN');
  for (const port of cfg.outboundPortsInclude) add(ISTIO_OUTPUT, ...tcpPort(port), '-j', ISTIO_REDIRECT);
  if (include === '*') add(ISTIO_OUTPUT, '-j', ISTIO_REDIRECT);
  else for (const cidr of ofFamily(include)) add(ISTIO_OUTPUT, '-d', cidr, '-j', ISTIO_REDIRECT);

  return { family, table: 'nat', chains: ISTIO_CHAINS, rules };
}

/** Every family the config asks for. */
export function buildAll(cfg: CaptureConfig): RuleSet[] {
  return cfg.ipv6 ? [buildRules(cfg, 4), buildRules(cfg, 6)] : [buildRules(cfg, 4)];
}

export function command(family: Family): 'iptables' | 'ip6tables' {
  return family === 4 ? 'iptables' : 'ip6tables';
}

/** Quotes an argument for a shell line only when it needs it. */
function shellWord(s: string): string {
  return /^[A-Za-z0-9_./:,=*!-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The rule set as the iptables commands that create it (what `--dry-run` prints, as istio-iptables does). */
export function renderCommands(set: RuleSet): string[] {
  const cmd = command(set.family);
  return [
    ...set.chains.map((c) => `${cmd} -t ${set.table} -N ${c}`),
    ...set.rules.map((r) => [cmd, '-t', set.table, '-A', r.chain, ...r.args].map(shellWord).join(' ')),
  ];
}

/** A rule from iptables-save, normalised so it compares with ours (`-m tcp` and friends are implied). */
export function normaliseRule(line: string): string {
  return line
    .trim()
    .replace(/\s+-m (tcp|udp)(?=\s)/g, '')
    .replace(/\s+/g, ' ');
}

/** The nat table as iptables-save shows it: chains declared, and rules per chain. */
export interface SavedTable {
  chains: Set<string>;
  rules: { chain: string; spec: string }[];
}

/** Parses the `*nat` section of iptables-save output. */
export function parseSave(text: string, table = 'nat'): SavedTable {
  const out: SavedTable = { chains: new Set(), rules: [] };
  let inTable = false;
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('*')) {
      inTable = line.slice(1) === table;
      continue;
    }
    if (!inTable || line === '' || line.startsWith('#')) continue;
    if (line === 'COMMIT') {
      inTable = false;
      continue;
    }
    if (line.startsWith(':')) {
      out.chains.add(line.slice(1).split(/\s+/)[0]!);
      continue;
    }
    const m = /^-A (\S+) (.*)$/.exec(line);
    if (m) out.rules.push({ chain: m[1]!, spec: m[2]! });
  }
  return out;
}

const BUILTIN = new Set(['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING']);

/**
 * What removing a capture takes, as iptables-restore lines (inside `*nat ...
 * COMMIT`, with --noflush): every jump from a built-in chain into an ISTIO_
 * chain and the built-in-chain rules `ours` would add (excluded interfaces),
 * then the ISTIO_ chains not in `keep`, flushed and deleted. Only what exists
 * is named, so the transaction never fails on a missing rule.
 */
export function cleanupLines(
  saved: SavedTable,
  ours: readonly Rule[] = [],
  keep: ReadonlySet<string> = new Set(),
): string[] {
  const lines: string[] = [];
  const wanted = new Set(
    ours.filter((r) => BUILTIN.has(r.chain)).map((r) => `${r.chain} ${normaliseRule(r.args.join(' '))}`),
  );
  for (const r of saved.rules) {
    if (!BUILTIN.has(r.chain)) continue;
    const jumpsToIstio = /(^|\s)-j ISTIO_\S+/.test(r.spec);
    if (jumpsToIstio || wanted.has(`${r.chain} ${normaliseRule(r.spec)}`))
      lines.push(`-D ${r.chain} ${r.spec}`);
  }
  const stale = [...saved.chains].filter((c) => c.startsWith('ISTIO_') && !keep.has(c));
  for (const c of stale) lines.push(`-F ${c}`);
  for (const c of stale) lines.push(`-X ${c}`);
  return lines;
}

/**
 * One iptables-restore --noflush transaction that replaces any earlier
 * capture with this one: our chains are declared first (which creates them,
 * or empties them if they exist), earlier jumps into them are removed, then
 * the rules are appended. Applying it twice leaves the same rules as once.
 */
export function restoreScript(set: RuleSet, saved: SavedTable): string {
  const lines = [`*${set.table}`];
  for (const c of set.chains) lines.push(`:${c} - [0:0]`);
  lines.push(...cleanupLines(saved, set.rules, new Set(set.chains)));
  for (const r of set.rules) lines.push(`-A ${r.chain} ${r.args.map(restoreWord).join(' ')}`);
  lines.push('COMMIT', '');
  return lines.join('\n');
}

/** The transaction that only removes the capture. */
export function cleanupScript(saved: SavedTable, ours: readonly Rule[] = []): string {
  return ['*nat', ...cleanupLines(saved, ours), 'COMMIT', ''].join('\n');
}

/** iptables-restore splits on whitespace and honours double quotes. */
function restoreWord(s: string): string {
  return /^[^\s"]+$/.test(s) ? s : `"${s.replace(/"/g, '\\"')}"`;
}
