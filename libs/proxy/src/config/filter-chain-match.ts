import net from 'node:net';
import { fail } from './errors.js';

/** envoy.config.listener.v3.FilterChainMatch as JSON. */
export interface FilterChainMatchJson {
  destination_port?: number;
  prefix_ranges?: CidrJson[];
  direct_source_prefix_ranges?: CidrJson[];
  server_names?: string[];
  transport_protocol?: string;
  application_protocols?: string[];
  source_type?: 'ANY' | 'SAME_IP_OR_LOOPBACK' | 'EXTERNAL';
  source_prefix_ranges?: CidrJson[];
  source_ports?: number[];
}

interface CidrJson {
  address_prefix: string;
  prefix_len?: number;
}

/** What the proxy knows of a connection when it picks a filter chain (Envoy's listener filters find most of it). */
export interface ConnectionFacts {
  destinationAddress: string;
  destinationPort: number;
  sourceAddress: string;
  sourcePort: number;
  /** `tls` when the first bytes are a TLS ClientHello, else `raw_buffer`. */
  transportProtocol: 'tls' | 'raw_buffer';
  serverName?: string;
  /** TLS ALPN, or what the HTTP inspector saw (`http/1.1`, `h2c`). */
  applicationProtocols: readonly string[];
}

class Cidrs {
  private readonly list = new net.BlockList();
  /** Longest prefix in the set, for Envoy's most-specific-match rule. */
  private readonly lengths: { len: number; list: net.BlockList }[] = [];

  constructor(ranges: readonly CidrJson[], where: string) {
    for (const [i, r] of ranges.entries()) {
      const family = net.isIPv6(r.address_prefix)
        ? 'ipv6'
        : net.isIPv4(r.address_prefix)
          ? 'ipv4'
          : undefined;
      if (!family) fail(`${where}[${i}]`, `"${r.address_prefix}" is not an IP address`);
      const max = family === 'ipv4' ? 32 : 128;
      const len = r.prefix_len ?? max;
      if (!(len >= 0 && len <= max)) fail(`${where}[${i}]`, `prefix length ${len} out of range`);
      this.list.addSubnet(r.address_prefix, len, family);
      const single = new net.BlockList();
      single.addSubnet(r.address_prefix, len, family);
      this.lengths.push({ len, list: single });
    }
  }

  get empty(): boolean {
    return this.lengths.length === 0;
  }

  /** The length of the longest prefix containing `ip`, or -1. */
  longestMatch(ip: string): number {
    const family = net.isIPv6(ip) ? 'ipv6' : 'ipv4';
    let best = -1;
    for (const { len, list } of this.lengths) if (len > best && list.check(ip, family)) best = len;
    return best;
  }
}

export interface CompiledChainMatch {
  /** True when the connection satisfies every criterion this chain names. */
  matches(c: ConnectionFacts): boolean;
  /** Envoy's matching order as a comparable tuple: a higher score is the more specific chain. */
  specificity(c: ConnectionFacts): number[];
  /** Does picking this chain need a look at the first bytes (SNI, TLS or HTTP detection)? */
  readonly needsInspection: boolean;
  readonly wantsHttpDetection: boolean;
}

function serverNameScore(names: readonly string[], sni: string | undefined): number {
  if (names.length === 0) return 0;
  if (!sni) return -1;
  const lower = sni.toLowerCase();
  let best = -1;
  for (const n of names) {
    if (n === lower) return 1_000_000;
    if (n.startsWith('*.') && lower.endsWith(n.slice(1))) best = Math.max(best, n.length);
  }
  return best;
}

function isLoopbackOrSame(c: ConnectionFacts): boolean {
  return c.sourceAddress === c.destinationAddress || /^127\.|^::1$|^::ffff:127\./.test(c.sourceAddress);
}

export function compileChainMatch(m: FilterChainMatchJson | undefined, where: string): CompiledChainMatch {
  const match = m ?? {};
  const dest = new Cidrs(match.prefix_ranges ?? [], `${where}.prefix_ranges`);
  const source = new Cidrs(
    [...(match.source_prefix_ranges ?? []), ...(match.direct_source_prefix_ranges ?? [])],
    `${where}.source_prefix_ranges`,
  );
  const names = (match.server_names ?? []).map((n) => n.toLowerCase());
  const alpn = match.application_protocols ?? [];
  const sourcePorts = new Set(match.source_ports ?? []);
  const sourceType = match.source_type ?? 'ANY';
  return {
    needsInspection: names.length > 0 || match.transport_protocol !== undefined || alpn.length > 0,
    wantsHttpDetection: alpn.some((p) => p === 'http/1.1' || p === 'h2c' || p === 'http/1.0'),
    matches: (c) => {
      if (match.destination_port !== undefined && match.destination_port !== c.destinationPort) return false;
      if (!dest.empty && dest.longestMatch(c.destinationAddress) < 0) return false;
      if (serverNameScore(names, c.serverName) < 0) return false;
      if (match.transport_protocol !== undefined && match.transport_protocol !== c.transportProtocol)
        return false;
      if (alpn.length && !alpn.some((p) => c.applicationProtocols.includes(p))) return false;
      if (sourceType === 'SAME_IP_OR_LOOPBACK' && !isLoopbackOrSame(c)) return false;
      if (sourceType === 'EXTERNAL' && isLoopbackOrSame(c)) return false;
      if (!source.empty && source.longestMatch(c.sourceAddress) < 0) return false;
      if (sourcePorts.size && !sourcePorts.has(c.sourcePort)) return false;
      return true;
    },
    specificity: (c) => [
      match.destination_port !== undefined ? 1 : 0,
      dest.empty ? -1 : dest.longestMatch(c.destinationAddress),
      serverNameScore(names, c.serverName),
      match.transport_protocol !== undefined ? 1 : 0,
      alpn.length ? 1 : 0,
      sourceType !== 'ANY' ? 1 : 0,
      source.empty ? -1 : source.longestMatch(c.sourceAddress),
      sourcePorts.size ? 1 : 0,
    ],
  };
}

/** Lexicographic comparison of two specificity tuples. */
export function compareSpecificity(a: readonly number[], b: readonly number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return 0;
}
