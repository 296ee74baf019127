import type { CidrRangeJson } from '../envoy/types.js';
import { fail } from './errors.js';

/**
 * IP addresses as bytes (4 for IPv4, 16 for IPv6) and Envoy's CidrRange
 * semantics: a range only ever matches addresses of its own IP version.
 * An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`, what a dual-stack Node
 * socket reports for an IPv4 peer) is treated as the IPv4 address it carries.
 */

export function parseIPv4(s: string): Uint8Array | undefined {
  const parts = s.split('.');
  if (parts.length !== 4) return undefined;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i]!;
    // Like Go's netip: decimal only, no leading zeros, 0..255.
    if (!/^(0|[1-9][0-9]{0,2})$/.test(p)) return undefined;
    const n = Number(p);
    if (n > 255) return undefined;
    out[i] = n;
  }
  return out;
}

export function parseIPv6(input: string): Uint8Array | undefined {
  let s = input;
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  if (!s.includes(':')) return undefined;
  const out = new Uint8Array(16);
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const parseGroups = (part: string): number[] | undefined => {
    if (part === '') return [];
    const groups: number[] = [];
    const items = part.split(':');
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      if (i === items.length - 1 && item.includes('.')) {
        const v4 = parseIPv4(item);
        if (!v4) return undefined;
        groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(item)) return undefined;
      groups.push(Number.parseInt(item, 16));
    }
    return groups;
  };
  const head = parseGroups(halves[0]!);
  const tail = halves.length === 2 ? parseGroups(halves[1]!) : [];
  if (!head || !tail) return undefined;
  const total = head.length + tail.length;
  if (halves.length === 1 ? total !== 8 : total > 7) return undefined;
  const groups = [...head, ...new Array<number>(8 - total).fill(0), ...tail];
  groups.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 0xff;
  });
  return out;
}

/** Bytes of an IPv4 or IPv6 address (IPv4-mapped IPv6 folded to IPv4), or undefined when it is not one. */
export function parseIp(s: string | undefined): Uint8Array | undefined {
  if (!s) return undefined;
  const v4 = parseIPv4(s);
  if (v4) return v4;
  const v6 = parseIPv6(s);
  if (!v6) return undefined;
  const mapped = v6.slice(0, 10).every((b) => b === 0) && v6[10] === 0xff && v6[11] === 0xff;
  return mapped ? v6.slice(12) : v6;
}

/** The canonical text form (Go's netip `String()`, RFC 5952 for IPv6). */
export function formatIp(bytes: Uint8Array): string {
  if (bytes.length === 4) return bytes.join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((bytes[i]! << 8) | bytes[i + 1]!);
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${bytes.slice(12).join('.')}`;
  }
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  const left = hex.slice(0, bestStart).join(':');
  const right = hex.slice(bestStart + bestLen).join(':');
  return `${left}::${right}`;
}

/**
 * Istio's `AddrStrToCidrRange`: `10.0.0.0/8` or a single address (a /32 or
 * /128). Throws an Error with a clear message for anything else.
 */
export function istioCidrRange(value: string): CidrRangeJson {
  const slash = value.indexOf('/');
  const addrText = slash < 0 ? value : value.slice(0, slash);
  // Parse without folding IPv4-mapped IPv6 (Go keeps the written form).
  const bytes = parseIPv4(addrText) ?? (addrText.includes('%') ? undefined : parseIPv6(addrText));
  if (!bytes) throw new Error(`"${value}" is not a valid IP address or CIDR block`);
  const bits = bytes.length * 8;
  let prefixLen = bits;
  if (slash >= 0) {
    const lenText = value.slice(slash + 1);
    if (!/^(0|[1-9][0-9]*)$/.test(lenText) || Number(lenText) > bits) {
      throw new Error(`"${value}" is not a valid CIDR block: prefix length must be 0..${bits}`);
    }
    prefixLen = Number(lenText);
  }
  return { address_prefix: formatIp(bytes), prefix_len: prefixLen };
}

export type IpPredicate = (ip: Uint8Array | undefined) => boolean;

/** Envoy's CidrRange match: same IP version, and the first prefix_len bits equal. */
export function compileCidrRange(range: CidrRangeJson, where: string): IpPredicate {
  const parsed = parseIPv4(range.address_prefix) ?? parseIPv6(range.address_prefix);
  if (!parsed) fail(where, `malformed IP address ${JSON.stringify(range.address_prefix)}`);
  const given = range.prefix_len ?? 0;
  const bits = parsed.length * 8;
  if (!Number.isInteger(given) || given < 0 || given > bits) {
    fail(where, `invalid prefix_len ${given} for ${range.address_prefix} (0..${bits})`);
  }
  // Addresses are compared with IPv4-mapped IPv6 folded to IPv4; fold the range the same way.
  const mapped =
    parsed.length === 16 &&
    parsed.slice(0, 10).every((b) => b === 0) &&
    parsed[10] === 0xff &&
    parsed[11] === 0xff;
  const fold = mapped && given >= 96;
  const base = fold ? parsed.slice(12) : parsed;
  const len = fold ? given - 96 : given;
  const fullBytes = len >> 3;
  const rest = len & 7;
  const mask = rest === 0 ? 0 : (0xff << (8 - rest)) & 0xff;
  return (ip) => {
    if (!ip || ip.length !== base.length) return false;
    for (let i = 0; i < fullBytes; i++) if (ip[i] !== base[i]) return false;
    if (rest !== 0 && (ip[fullBytes]! & mask) !== (base[fullBytes]! & mask)) return false;
    return true;
  };
}
