import { describe, expect, it } from 'vitest';
import { evalContextOf } from '../src/authz/attributes.js';
import { RbacEngine } from '../src/authz/rbac-engine.js';
import { PolicyError } from '../src/common/errors.js';
import { istioCidrRange, parseIp } from '../src/common/ip.js';
import type { PermissionJson, PrincipalJson } from '../src/envoy/types.js';
import { AuthzChain, RBAC_HTTP_TYPE, RBAC_NETWORK_TYPE, type RequestAttributes } from '../src/index.js';
import { http, tcp } from './helpers.js';

function permits(p: PermissionJson, req: RequestAttributes): boolean {
  const engine = RbacEngine.compile(
    { policies: { p: { permissions: [p], principals: [{ any: true }] } } },
    'test',
  );
  return engine.evaluate(evalContextOf(req)).allowed;
}

function identifies(p: PrincipalJson, req: RequestAttributes): boolean {
  const engine = RbacEngine.compile(
    { policies: { p: { permissions: [{ any: true }], principals: [p] } } },
    'test',
  );
  return engine.evaluate(evalContextOf(req)).allowed;
}

describe('Envoy RBAC permissions', () => {
  const cases: [string, PermissionJson, RequestAttributes, boolean][] = [
    ['any', { any: true }, tcp(), true],
    [
      'and_rules all',
      {
        and_rules: {
          rules: [
            { destination_port: 8000 },
            { destination_ip: { address_prefix: '10.0.0.0', prefix_len: 8 } },
          ],
        },
      },
      tcp(),
      true,
    ],
    [
      'and_rules one fails',
      { and_rules: { rules: [{ destination_port: 8000 }, { destination_port: 1 }] } },
      tcp(),
      false,
    ],
    ['or_rules', { or_rules: { rules: [{ destination_port: 1 }, { destination_port: 8000 }] } }, tcp(), true],
    ['not_rule', { not_rule: { destination_port: 8000 } }, tcp(), false],
    [
      'destination_port_range [start, end)',
      { destination_port_range: { start: 8000, end: 8001 } },
      tcp(),
      true,
    ],
    [
      'destination_port_range excludes end',
      { destination_port_range: { start: 7000, end: 8000 } },
      tcp(),
      false,
    ],
    [
      'destination_ip v6',
      { destination_ip: { address_prefix: 'fd00::', prefix_len: 8 } },
      tcp({ destIp: 'fd12::1' }),
      true,
    ],
    [
      'destination_ip v4 range never matches v6',
      { destination_ip: { address_prefix: '0.0.0.0', prefix_len: 0 } },
      tcp({ destIp: '::1' }),
      false,
    ],
    [
      'destination_ip /0 matches every v4',
      { destination_ip: { address_prefix: '0.0.0.0', prefix_len: 0 } },
      tcp({ destIp: '8.8.8.8' }),
      true,
    ],
    [
      'destination_ip non-octet prefix',
      { destination_ip: { address_prefix: '10.0.0.0', prefix_len: 27 } },
      tcp({ destIp: '10.0.0.31' }),
      true,
    ],
    [
      'destination_ip non-octet prefix, outside',
      { destination_ip: { address_prefix: '10.0.0.0', prefix_len: 27 } },
      tcp({ destIp: '10.0.0.32' }),
      false,
    ],
    [
      'requested_server_name without SNI matches the empty string',
      { requested_server_name: { exact: '' } },
      tcp(),
      true,
    ],
    [
      'requested_server_name contains',
      { requested_server_name: { contains: 'example' } },
      tcp({ sni: 'a.example.com' }),
      true,
    ],
    ['header exact', { header: { name: ':method', string_match: { exact: 'GET' } } }, http(), true],
    ['header legacy exact_match', { header: { name: ':method', exact_match: 'GET' } }, http(), true],
    [
      'header legacy prefix/suffix/contains',
      {
        and_rules: {
          rules: [
            { header: { name: 'x', prefix_match: 'ab' } },
            { header: { name: 'x', suffix_match: 'yz' } },
            { header: { name: 'x', contains_match: 'mm' } },
          ],
        },
      },
      http({ headers: { x: 'abmmyz' } }),
      true,
    ],
    [
      'header ignore_case',
      { header: { name: 'x', string_match: { exact: 'ABC', ignore_case: true } } },
      http({ headers: { x: 'abc' } }),
      true,
    ],
    [
      'header safe_regex is a full match',
      { header: { name: 'x', string_match: { safe_regex: { regex: 'a+' } } } },
      http({ headers: { x: 'aab' } }),
      false,
    ],
    [
      'header safe_regex_match',
      { header: { name: 'x', safe_regex_match: { regex: 'a+b' } } },
      http({ headers: { x: 'aab' } }),
      true,
    ],
    ['header missing does not match', { header: { name: 'x', string_match: { prefix: '' } } }, http(), false],
    [
      'header missing with invert_match matches',
      { header: { name: 'x', string_match: { exact: 'y' }, invert_match: true } },
      http(),
      true,
    ],
    [
      'header treat_missing_header_as_empty',
      { header: { name: 'x', string_match: { exact: '' }, treat_missing_header_as_empty: true } },
      http(),
      true,
    ],
    ['header present_match false', { header: { name: 'x', present_match: false } }, http(), true],
    [
      'header range_match',
      { header: { name: 'x', range_match: { start: 10, end: 20 } } },
      http({ headers: { x: '15' } }),
      true,
    ],
    ['header on TCP (no headers)', { header: { name: ':method', present_match: true } }, tcp(), false],
    ['url_path ignores the query', { url_path: { path: { exact: '/a' } } }, http({ path: '/a?b=c' }), true],
    ['url_path on TCP', { url_path: { path: { prefix: '/' } } }, tcp(), false],
    [
      'metadata double range',
      {
        metadata: {
          filter: 'f',
          path: [{ key: 'n' }],
          value: { double_match: { range: { start: 1, end: 5 } } },
        },
      },
      http({ metadata: { f: { n: 3 } } }),
      true,
    ],
    [
      'metadata double exact',
      { metadata: { filter: 'f', path: [{ key: 'n' }], value: { double_match: { exact: 2 } } } },
      http({ metadata: { f: { n: 3 } } }),
      false,
    ],
    [
      'metadata bool',
      { metadata: { filter: 'f', path: [{ key: 'b' }], value: { bool_match: true } } },
      http({ metadata: { f: { b: true } } }),
      true,
    ],
    [
      'metadata null',
      { metadata: { filter: 'f', path: [{ key: 'z' }], value: { null_match: {} } } },
      http({ metadata: { f: { z: null } } }),
      true,
    ],
    [
      'metadata present',
      { metadata: { filter: 'f', path: [{ key: 'a' }, { key: 'b' }], value: { present_match: true } } },
      http({ metadata: { f: { a: { b: 'x' } } } }),
      true,
    ],
    [
      'metadata absent path',
      { metadata: { filter: 'f', path: [{ key: 'a' }, { key: 'c' }], value: { present_match: true } } },
      http({ metadata: { f: { a: { b: 'x' } } } }),
      false,
    ],
    [
      'metadata invert',
      {
        metadata: {
          filter: 'f',
          path: [{ key: 'a' }],
          value: { string_match: { exact: 'x' } },
          invert: true,
        },
      },
      http({ metadata: { f: { a: 'y' } } }),
      true,
    ],
    [
      'metadata or_match',
      {
        metadata: {
          filter: 'f',
          path: [{ key: 'a' }],
          value: { or_match: { value_matchers: [{ string_match: { exact: 'x' } }, { bool_match: false }] } },
        },
      },
      http({ metadata: { f: { a: false } } }),
      true,
    ],
    [
      'metadata string on a list does not match',
      { metadata: { filter: 'f', path: [{ key: 'a' }], value: { string_match: { exact: 'x' } } } },
      http({ metadata: { f: { a: ['x'] } } }),
      false,
    ],
  ];
  it.each(cases)('%s', (_n, p, req, want) => {
    expect(permits(p, req)).toBe(want);
  });
});

describe('Envoy RBAC principals', () => {
  const cases: [string, PrincipalJson, RequestAttributes, boolean][] = [
    ['authenticated without a name: any mTLS peer', { authenticated: {} }, tcp(), true],
    ['authenticated on plaintext', { authenticated: {} }, tcp({ principal: null }), false],
    [
      'authenticated principal_name',
      { authenticated: { principal_name: { suffix: '/sa/sleep' } } },
      tcp(),
      true,
    ],
    [
      'source_ip (deprecated) is the direct peer',
      { source_ip: { address_prefix: '10.0.0.1', prefix_len: 32 } },
      tcp({ remoteIp: '1.1.1.1' }),
      true,
    ],
    [
      'direct_remote_ip',
      { direct_remote_ip: { address_prefix: '10.0.0.0', prefix_len: 31 } },
      tcp({ sourceIp: '10.0.0.1' }),
      true,
    ],
    [
      'remote_ip',
      { remote_ip: { address_prefix: '1.1.1.0', prefix_len: 24 } },
      tcp({ remoteIp: '1.1.1.1' }),
      true,
    ],
    ['and_ids', { and_ids: { ids: [{ any: true }, { not_id: { any: true } }] } }, tcp(), false],
    ['or_ids', { or_ids: { ids: [{ not_id: { any: true } }, { any: true }] } }, tcp(), true],
    [
      'header',
      { header: { name: 'x-user', string_match: { exact: 'a' } } },
      http({ headers: { 'X-User': 'a' } }),
      true,
    ],
    ['url_path', { url_path: { path: { suffix: '.png' } } }, http({ path: '/a.png' }), true],
    [
      'metadata istio_authn from the peer',
      {
        metadata: {
          filter: 'istio_authn',
          path: [{ key: 'source.namespace' }],
          value: { string_match: { exact: 'foo' } },
        },
      },
      tcp(),
      true,
    ],
  ];
  it.each(cases)('%s', (_n, p, req, want) => {
    expect(identifies(p, req)).toBe(want);
  });
});

describe('Envoy RBAC engine', () => {
  it('reports the first matching policy by name', () => {
    const engine = RbacEngine.compile(
      {
        action: 'DENY',
        policies: {
          zeta: { permissions: [{ any: true }], principals: [{ any: true }] },
          alpha: { permissions: [{ any: true }], principals: [{ any: true }] },
        },
      },
      't',
    );
    expect(engine.evaluate(evalContextOf(tcp()))).toEqual({ allowed: false, policy: 'alpha' });
  });

  it('refuses what it cannot run, naming the field', () => {
    expect(() =>
      RbacEngine.compile({ policies: { p: { permissions: [{}], principals: [{ any: true }] } } }, 'cfg'),
    ).toThrow('cfg.policies["p"].permissions[0]: sets none of and_rules');
    expect(() =>
      RbacEngine.compile(
        {
          policies: { p: { permissions: [{ any: true, destination_port: 1 }], principals: [{ any: true }] } },
        },
        'cfg',
      ),
    ).toThrow('sets more than one of any, destination_port');
    expect(() =>
      RbacEngine.compile(
        {
          policies: {
            p: {
              permissions: [{ header: { name: 'x', string_match: { safe_regex: { regex: '(' } } } }],
              principals: [{ any: true }],
            },
          },
        },
        'cfg',
      ),
    ).toThrow(/invalid RE2 regex/);
    expect(() =>
      RbacEngine.compile(
        {
          policies: {
            p: {
              permissions: [{ destination_ip: { address_prefix: '10.0.0.0', prefix_len: 40 } }],
              principals: [{ any: true }],
            },
          },
        },
        'cfg',
      ),
    ).toThrow(PolicyError);
    expect(() =>
      RbacEngine.compile(
        { policies: { p: { permissions: [{ any: true }], principals: [{ filter_state: {} }] } } },
        'cfg',
      ),
    ).toThrow('filter_state principals are not supported');
    expect(() =>
      RbacEngine.compile(
        { policies: { p: { permissions: [{ any: true }], principals: [{ any: true }], condition: {} } } },
        'cfg',
      ),
    ).toThrow('CEL conditions are not supported');
  });

  it('treats a filter without rules as allowing, and rules without policies under ALLOW as denying', () => {
    const none = AuthzChain.compile([
      {
        name: 'envoy.filters.network.rbac',
        typed_config: { '@type': RBAC_NETWORK_TYPE, stat_prefix: 'tcp.' },
      },
    ]);
    expect(none.evaluate(tcp()).verdict).toBe('allow');
    const empty = AuthzChain.compile([
      { name: 'envoy.filters.http.rbac', typed_config: { '@type': RBAC_HTTP_TYPE, rules: {} } },
    ]);
    expect(empty.evaluate(http()).verdict).toBe('deny');
    expect(() =>
      AuthzChain.compile([{ name: 'x', typed_config: { '@type': 'type.googleapis.com/foo' } }]),
    ).toThrow('authorization[0] (x): type.googleapis.com/foo is not an authorization filter');
  });
});

describe('IP addresses and CIDR ranges', () => {
  it('parses and canonicalizes like Go netip', () => {
    expect(istioCidrRange('10.0.0.1')).toEqual({ address_prefix: '10.0.0.1', prefix_len: 32 });
    expect(istioCidrRange('10.0.0.0/8')).toEqual({ address_prefix: '10.0.0.0', prefix_len: 8 });
    expect(istioCidrRange('2001:DB8:0:0:0:0:0:1/64')).toEqual({
      address_prefix: '2001:db8::1',
      prefix_len: 64,
    });
    expect(istioCidrRange('::')).toEqual({ address_prefix: '::', prefix_len: 128 });
    expect(istioCidrRange('::ffff:1.2.3.4')).toEqual({ address_prefix: '::ffff:1.2.3.4', prefix_len: 128 });
    for (const bad of [
      '10.0.0.256',
      '010.0.0.1',
      '10.0.0.0/33',
      '10.0.0.0/-1',
      'fe80::1%eth0/64',
      '1::2::3',
      'x',
      '10.0.0.0/8/8',
    ]) {
      expect(() => istioCidrRange(bad), bad).toThrow(/is not a valid/);
    }
  });

  it('folds IPv4-mapped IPv6 addresses to IPv4', () => {
    expect(parseIp('::ffff:10.1.2.3')).toEqual(new Uint8Array([10, 1, 2, 3]));
    expect(parseIp('fe80::1%lo0')?.length).toBe(16);
    expect(parseIp('')).toBeUndefined();
  });
});
