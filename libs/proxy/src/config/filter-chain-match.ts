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
  /**
   * Each of Envoy's nine criteria, in Envoy's order (destination port,
   * destination IP, server name, transport protocol, application protocols,
   * directly connected source IP, source type, source IP, source port): how
   * specifically this chain matches the connection on it (0: the chain does
   * not name it; higher: more specific), or undefined when it does not match.
   */
  steps(c: ConnectionFacts): (number | undefined)[];
  /** The destination port this chain names, if any. */
  readonly destinationPort?: number;
  /** Does picking this chain need a look at the first bytes (SNI, TLS or HTTP detection)? */
  readonly needsInspection: boolean;
  readonly wantsHttpDetection: boolean;
}

function serverNameScore(names: readonly string[], sni: string | undefined): number | undefined {
  if (names.length === 0) return 0;
  if (!sni) return undefined;
  const lower = sni.toLowerCase();
  let best: number | undefined;
  for (const n of names) {
    if (n === lower) return 1_000_000;
    if (n.startsWith('*.') && lower.endsWith(n.slice(1))) best = Math.max(best ?? 0, n.length);
  }
  return best;
}

function isLoopbackOrSame(c: ConnectionFacts): boolean {
  return c.sourceAddress === c.destinationAddress || /^127\.|^::1$|^::ffff:127\./.test(c.sourceAddress);
}

/** 0 when no ranges are named, else 1 + the longest prefix containing `ip` (undefined: none does). */
function rangeScore(ranges: Cidrs, ip: string): number | undefined {
  if (ranges.empty) return 0;
  const len = ranges.longestMatch(ip);
  return len < 0 ? undefined : len + 1;
}

export function compileChainMatch(m: FilterChainMatchJson | undefined, where: string): CompiledChainMatch {
  const match = m ?? {};
  const dest = new Cidrs(match.prefix_ranges ?? [], `${where}.prefix_ranges`);
  const direct = new Cidrs(match.direct_source_prefix_ranges ?? [], `${where}.direct_source_prefix_ranges`);
  const source = new Cidrs(match.source_prefix_ranges ?? [], `${where}.source_prefix_ranges`);
  const names = (match.server_names ?? []).map((n) => n.toLowerCase());
  const alpn = match.application_protocols ?? [];
  const sourcePorts = new Set(match.source_ports ?? []);
  const sourceType = match.source_type ?? 'ANY';
  const port = match.destination_port;
  const named = (set: boolean, ok: boolean) => (!set ? 0 : ok ? 1 : undefined);
  return {
    ...(port !== undefined ? { destinationPort: port } : {}),
    needsInspection: names.length > 0 || match.transport_protocol !== undefined || alpn.length > 0,
    wantsHttpDetection: alpn.some((p) => p === 'http/1.1' || p === 'h2c' || p === 'http/1.0'),
    steps: (c) => [
      named(port !== undefined, port === c.destinationPort),
      rangeScore(dest, c.destinationAddress),
      serverNameScore(names, c.serverName),
      named(match.transport_protocol !== undefined, match.transport_protocol === c.transportProtocol),
      named(
        alpn.length > 0,
        alpn.some((p) => c.applicationProtocols.includes(p)),
      ),
      rangeScore(direct, c.sourceAddress),
      sourceType === 'ANY'
        ? 0
        : (sourceType === 'SAME_IP_OR_LOOPBACK') === isLoopbackOrSame(c)
          ? 1
          : undefined,
      rangeScore(source, c.sourceAddress),
      named(sourcePorts.size > 0, sourcePorts.has(c.sourcePort)),
    ],
  };
}

/**
 * Envoy's filter chain selection: criterion by criterion, in Envoy's order,
 * only the chains that match it most specifically go on to the next; when
 * none matches a criterion, no chain is selected (there is no going back to
 * a less specific value of an earlier criterion). So a plaintext connection
 * to a port whose chains all require TLS is refused, even when a catch-all
 * chain without a destination port would take plaintext.
 */
export function selectFilterChain<T extends { readonly match: CompiledChainMatch }>(
  chains: readonly T[],
  facts: ConnectionFacts,
): T | undefined {
  let candidates = chains.map((chain) => ({ chain, steps: chain.match.steps(facts) }));
  for (let i = 0; candidates.length > 0 && i < candidates[0]!.steps.length; i++) {
    let best: number | undefined;
    for (const c of candidates) {
      const s = c.steps[i];
      if (s !== undefined && (best === undefined || s > best)) best = s;
    }
    if (best === undefined) return undefined;
    candidates = candidates.filter((c) => c.steps[i] === best);
  }
  return candidates[0]?.chain;
}
