import { isIP } from 'node:net';
import type { HeaderMatcherJson, QueryParameterMatcherJson } from '../envoy/types.js';
import { fail } from './errors.js';
import {
  compileHeaderMatcher,
  compileQueryMatcher,
  type HeaderLookup,
  type HeaderPredicate,
  type QueryPredicate,
} from './string-matcher.js';

/**
 * Envoy's route-level `rate_limits` (envoy.config.route.v3.RateLimit): each
 * entry turns a request into one descriptor, a list of key/value entries
 * built by its actions in order. When an action cannot produce its entry
 * (a missing header, a header_value_match that does not match) the whole
 * descriptor is not produced, as in Envoy. The local rate limit filter looks
 * its token buckets up by these descriptors.
 */

/** A descriptor entry. */
export interface DescriptorEntry {
  readonly key: string;
  readonly value: string;
}

export type Descriptor = readonly DescriptorEntry[];

/** What the actions read from a request. */
export interface DescriptorInput {
  readonly header: HeaderLookup;
  readonly query: () => URLSearchParams;
  /** The client's address (Envoy's trusted downstream address). */
  readonly remoteAddress: string;
  /** The cluster the route sends to (destination_cluster), when it forwards to one. */
  readonly destinationCluster?: string;
  /** This proxy's cluster name (source_cluster). */
  readonly sourceCluster?: string;
}

export interface CompiledRateLimit {
  readonly stage: number;
  descriptor(input: DescriptorInput): Descriptor | undefined;
}

interface ActionJson {
  source_cluster?: Record<string, never>;
  destination_cluster?: Record<string, never>;
  request_headers?: { header_name: string; descriptor_key: string; skip_if_absent?: boolean };
  remote_address?: Record<string, never>;
  masked_remote_address?: { v4_prefix_mask_len?: number; v6_prefix_mask_len?: number };
  generic_key?: { descriptor_value: string; descriptor_key?: string };
  header_value_match?: {
    descriptor_key?: string;
    descriptor_value: string;
    expect_match?: boolean;
    headers: HeaderMatcherJson[];
  };
  query_parameter_value_match?: {
    descriptor_key?: string;
    descriptor_value: string;
    expect_match?: boolean;
    query_parameters: QueryParameterMatcherJson[];
  };
  [other: string]: unknown;
}

export interface RateLimitJson {
  stage?: number;
  disable_key?: string;
  actions?: ActionJson[];
  limit?: unknown;
}

/** One action: its entry, `null` to leave it out (skip_if_absent), undefined when the descriptor is not produced. */
type Action = (input: DescriptorInput) => DescriptorEntry | null | undefined;

/** Envoy's `expect_match`: a BoolValue that may arrive wrapped or plain; true by default. */
function expectMatch(v: unknown): boolean {
  if (v === undefined || v === null) return true;
  if (typeof v === 'object') return (v as { value?: boolean }).value !== false;
  return v !== false;
}

function uint(v: unknown): number | undefined {
  if (v === undefined || v === null) return undefined;
  const n = typeof v === 'object' ? (v as { value?: number }).value : v;
  return typeof n === 'number' ? n : undefined;
}

/** `10.1.2.3` with /24 → `10.1.2.0/24`; IPv6 alike. */
export function maskAddress(address: string, v4Bits: number, v6Bits: number): string | undefined {
  const plain = address.startsWith('::ffff:') && isIP(address.slice(7)) === 4 ? address.slice(7) : address;
  const family = isIP(plain);
  if (family === 4) {
    const n = plain.split('.').reduce((acc, part) => acc * 256 + Number(part), 0);
    const block = 2 ** (32 - v4Bits);
    const masked = Math.floor(n / block) * block;
    return `${[24, 16, 8, 0].map((s) => Math.floor(masked / 2 ** s) % 256).join('.')}/${v4Bits}`;
  }
  if (family === 6) {
    const groups = expandIpv6(plain);
    let bits = v6Bits;
    const out = groups.map((g) => {
      const keep = Math.max(0, Math.min(16, bits));
      bits -= 16;
      return keep === 16 ? g : keep === 0 ? 0 : g & (0xffff << (16 - keep)) & 0xffff;
    });
    return `${out.map((g) => g.toString(16)).join(':')}/${v6Bits}`;
  }
  return undefined;
}

function expandIpv6(address: string): number[] {
  const [head, tail] = address.split('::') as [string, string | undefined];
  const part = (s: string | undefined) => (s ? s.split(':').map((g) => Number.parseInt(g, 16)) : []);
  const left = part(head);
  const right = part(tail);
  return [...left, ...Array(8 - left.length - right.length).fill(0), ...right];
}

function compileAction(a: ActionJson, where: string): Action {
  if (a.request_headers) {
    const { header_name, descriptor_key, skip_if_absent } = a.request_headers;
    if (!header_name || !descriptor_key) fail(where, 'request_headers needs header_name and descriptor_key');
    const name = header_name.toLowerCase();
    return (input) => {
      const value = input.header(name);
      if (value === undefined || value === '') return skip_if_absent ? null : undefined;
      return { key: descriptor_key, value };
    };
  }
  if (a.remote_address) {
    return (input) =>
      input.remoteAddress ? { key: 'remote_address', value: input.remoteAddress } : undefined;
  }
  if (a.masked_remote_address) {
    const v4 = uint(a.masked_remote_address.v4_prefix_mask_len) ?? 32;
    const v6 = uint(a.masked_remote_address.v6_prefix_mask_len) ?? 128;
    if (v4 > 32 || v6 > 128) fail(where, 'masked_remote_address prefix lengths are at most 32 and 128');
    return (input) => {
      const value = maskAddress(input.remoteAddress, v4, v6);
      return value ? { key: 'masked_remote_address', value } : undefined;
    };
  }
  if (a.generic_key) {
    const { descriptor_value, descriptor_key } = a.generic_key;
    if (!descriptor_value) fail(where, 'generic_key needs a descriptor_value');
    const entry = { key: descriptor_key || 'generic_key', value: descriptor_value };
    return () => entry;
  }
  if (a.header_value_match) {
    const m = a.header_value_match;
    if (!m.descriptor_value) fail(where, 'header_value_match needs a descriptor_value');
    if (!m.headers?.length) fail(where, 'header_value_match needs at least one header matcher');
    const headers: HeaderPredicate[] = m.headers.map((h, i) =>
      compileHeaderMatcher(h, `${where}.header_value_match.headers[${i}]`),
    );
    const want = expectMatch(m.expect_match);
    const entry = { key: m.descriptor_key || 'header_match', value: m.descriptor_value };
    return (input) => (headers.every((h) => h(input.header)) === want ? entry : undefined);
  }
  if (a.query_parameter_value_match) {
    const m = a.query_parameter_value_match;
    if (!m.descriptor_value) fail(where, 'query_parameter_value_match needs a descriptor_value');
    const params: QueryPredicate[] = (m.query_parameters ?? []).map((q, i) =>
      compileQueryMatcher(q, `${where}.query_parameter_value_match.query_parameters[${i}]`),
    );
    const want = expectMatch(m.expect_match);
    const entry = { key: m.descriptor_key || 'query_match', value: m.descriptor_value };
    return (input) => (params.every((p) => p(input.query())) === want ? entry : undefined);
  }
  if (a.destination_cluster) {
    return (input) =>
      input.destinationCluster ? { key: 'destination_cluster', value: input.destinationCluster } : undefined;
  }
  if (a.source_cluster) {
    return (input) =>
      input.sourceCluster ? { key: 'source_cluster', value: input.sourceCluster } : undefined;
  }
  const kind = Object.keys(a)[0] ?? '(none)';
  fail(where, `rate limit action ${kind} is not supported by this proxy`);
}

/** Compiles a `rate_limits` list (route action or virtual host). */
export function compileRateLimits(list: RateLimitJson[] | undefined, where: string): CompiledRateLimit[] {
  return (list ?? []).map((r, i) => {
    const at = `${where}.rate_limits[${i}]`;
    if (!r.actions?.length) fail(at, 'a rate limit needs at least one action');
    if (r.limit !== undefined) fail(`${at}.limit`, 'dynamic metadata limit overrides are not supported');
    const actions = r.actions.map((a, j) => compileAction(a, `${at}.actions[${j}]`));
    return {
      stage: uint(r.stage) ?? 0,
      descriptor: (input) => {
        const entries: DescriptorEntry[] = [];
        for (const action of actions) {
          const entry = action(input);
          if (entry === undefined) return undefined;
          if (entry !== null) entries.push(entry);
        }
        return entries.length ? entries : undefined;
      },
    };
  });
}

/** The route's and virtual host's rate limits, as Envoy's vh_rate_limits option combines them. */
export function applicableRateLimits(
  route: readonly CompiledRateLimit[],
  vhost: readonly CompiledRateLimit[],
  option: 'OVERRIDE' | 'INCLUDE' | 'IGNORE',
): readonly CompiledRateLimit[] {
  switch (option) {
    case 'INCLUDE':
      return [...route, ...vhost];
    case 'IGNORE':
      return route;
    default:
      return route.length ? route : vhost;
  }
}
