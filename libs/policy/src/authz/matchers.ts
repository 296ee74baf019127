import { fail } from '../common/errors.js';
import { compileCidrRange } from '../common/ip.js';
import {
  compileHeaderMatcher,
  compileMetadataMatcher,
  compilePathMatcher,
  compileStringMatcher,
  compileUriTemplate,
} from '../common/matchers.js';
import { type PermissionJson, type PrincipalJson, URI_TEMPLATE_TYPE } from '../envoy/types.js';
import type { EvalContext } from './attributes.js';

/**
 * Envoy's RBAC Permission and Principal matchers
 * (source/extensions/filters/common/rbac/matchers), compiled into closures
 * over the per-request {@link EvalContext}.
 */

export type Predicate = (ctx: EvalContext) => boolean;

function oneOf(obj: object, where: string, kinds: readonly string[]): string {
  const set = kinds.filter((k) => (obj as Record<string, unknown>)[k] !== undefined);
  if (set.length === 0) fail(where, `sets none of ${kinds.join(', ')}`);
  if (set.length > 1) fail(where, `sets more than one of ${set.join(', ')}`);
  return set[0]!;
}

const PERMISSION_KINDS = [
  'and_rules',
  'or_rules',
  'any',
  'header',
  'url_path',
  'destination_ip',
  'destination_port',
  'destination_port_range',
  'metadata',
  'not_rule',
  'requested_server_name',
  'matcher',
  'uri_template',
] as const;

const PRINCIPAL_KINDS = [
  'and_ids',
  'or_ids',
  'any',
  'authenticated',
  'source_ip',
  'direct_remote_ip',
  'remote_ip',
  'header',
  'url_path',
  'metadata',
  'filter_state',
  'not_id',
] as const;

function all(preds: Predicate[]): Predicate {
  if (preds.length === 1) return preds[0]!;
  return (ctx) => {
    for (const p of preds) if (!p(ctx)) return false;
    return true;
  };
}

export function some(preds: Predicate[]): Predicate {
  if (preds.length === 1) return preds[0]!;
  return (ctx) => {
    for (const p of preds) if (p(ctx)) return true;
    return false;
  };
}

/** and_rules / or_rules, and_ids / or_ids: all of `items`, or any of them; an empty list is refused. */
function combined<T>(
  items: readonly T[] | undefined,
  every: boolean,
  at: string,
  list: 'rules' | 'ids',
  compile: (item: T, where: string) => Predicate,
): Predicate {
  if (!items?.length) fail(at, `needs at least one ${list === 'rules' ? 'rule' : 'id'}`);
  const preds = items.map((item, i) => compile(item, `${at}.${list}[${i}]`));
  return every ? all(preds) : some(preds);
}

/** `any`, which Envoy requires to be true: matches everything. */
function anything(value: boolean | undefined, at: string): Predicate {
  if (value !== true) fail(at, 'must be true');
  return () => true;
}

/** The matchers a Permission and a Principal have alike: a request header, the path, dynamic metadata. */
type RequestMatcherKind = 'header' | 'url_path' | 'metadata';

function requestMatcher(
  m: Pick<PermissionJson & PrincipalJson, RequestMatcherKind>,
  kind: RequestMatcherKind,
  at: string,
): Predicate {
  switch (kind) {
    case 'header': {
      const test = compileHeaderMatcher(m.header!, at);
      return (ctx) => test(ctx.headers);
    }
    case 'url_path': {
      const test = compilePathMatcher(m.url_path!, at);
      return (ctx) => test(ctx.path);
    }
    case 'metadata': {
      const test = compileMetadataMatcher(m.metadata!, at);
      return (ctx) => test(ctx.metadata);
    }
  }
}

export function compilePermission(p: PermissionJson, where: string): Predicate {
  const kind = oneOf(p, where, PERMISSION_KINDS);
  const at = `${where}.${kind}`;
  switch (kind) {
    case 'and_rules':
      return combined(p.and_rules?.rules, true, at, 'rules', compilePermission);
    case 'or_rules':
      return combined(p.or_rules?.rules, false, at, 'rules', compilePermission);
    case 'any':
      return anything(p.any, at);
    case 'header':
    case 'url_path':
    case 'metadata':
      return requestMatcher(p, kind, at);
    case 'destination_ip': {
      const m = compileCidrRange(p.destination_ip!, at);
      return (ctx) => m(ctx.destinationIp);
    }
    case 'destination_port': {
      const port = p.destination_port!;
      if (!Number.isInteger(port) || port < 0 || port > 65535) fail(at, `invalid port ${port}`);
      return (ctx) => ctx.destinationPort === port;
    }
    case 'destination_port_range': {
      const { start, end } = p.destination_port_range!;
      return (ctx) => ctx.destinationPort >= start && ctx.destinationPort < end;
    }
    case 'not_rule': {
      const inner = compilePermission(p.not_rule!, at);
      return (ctx) => !inner(ctx);
    }
    case 'requested_server_name': {
      const m = compileStringMatcher(p.requested_server_name!, at);
      return (ctx) => m(ctx.sni);
    }
    case 'uri_template': {
      const tc = p.uri_template!.typed_config;
      if (tc?.['@type'] !== URI_TEMPLATE_TYPE) {
        fail(at, `unsupported uri_template extension ${String(tc?.['@type'])}`);
      }
      const template = tc.path_template;
      if (typeof template !== 'string') fail(at, 'uri_template needs a path_template');
      const m = compileUriTemplate(template, `${at}.path_template`);
      return (ctx) => m(ctx.path);
    }
    default:
      fail(at, `${kind} permissions (matcher extensions) are not supported by this proxy`);
  }
}

export function compilePrincipal(p: PrincipalJson, where: string): Predicate {
  const kind = oneOf(p, where, PRINCIPAL_KINDS);
  const at = `${where}.${kind}`;
  switch (kind) {
    case 'and_ids':
      return combined(p.and_ids?.ids, true, at, 'ids', compilePrincipal);
    case 'or_ids':
      return combined(p.or_ids?.ids, false, at, 'ids', compilePrincipal);
    case 'any':
      return anything(p.any, at);
    case 'authenticated': {
      const name = p.authenticated!.principal_name;
      // Envoy: not TLS-authenticated never matches; no principal_name matches any authenticated peer.
      if (!name) return (ctx) => ctx.peerPrincipal !== undefined;
      const m = compileStringMatcher(name, `${at}.principal_name`);
      return (ctx) => ctx.peerPrincipal !== undefined && m(ctx.peerPrincipal);
    }
    case 'source_ip':
    case 'direct_remote_ip': {
      // source_ip is the deprecated spelling of direct_remote_ip.
      const m = compileCidrRange((kind === 'source_ip' ? p.source_ip : p.direct_remote_ip)!, at);
      return (ctx) => m(ctx.directRemote);
    }
    case 'remote_ip': {
      const m = compileCidrRange(p.remote_ip!, at);
      return (ctx) => m(ctx.remote);
    }
    case 'header':
    case 'url_path':
    case 'metadata':
      return requestMatcher(p, kind, at);
    case 'not_id': {
      const inner = compilePrincipal(p.not_id!, at);
      return (ctx) => !inner(ctx);
    }
    default:
      fail(at, 'filter_state principals are not supported by this proxy');
  }
}
