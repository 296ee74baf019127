import { encodeMessage } from '@mizzen/xds';
import { describe, expect, it } from 'vitest';
import { selectAuthorizationPolicies } from '../src/authz/select.js';
import type { RbacRulesJson } from '../src/envoy/types.js';
import {
  buildAuthorizationFilters,
  EXT_AUTHZ_HTTP_TYPE,
  RBAC_HTTP_TYPE,
  RBAC_NETWORK_TYPE,
} from '../src/index.js';
import { ap, expectEncodes, NS, WORKLOAD } from './helpers.js';

const DRY = { annotations: { 'istio.io/dry-run': 'true' } };

describe('AuthorizationPolicy → Envoy RBAC (shape)', () => {
  it('translates every from/to field and when key in Istio order, and it encodes', () => {
    const policy = ap('full', {
      rules: [
        {
          from: [
            {
              source: {
                principals: ['cluster.local/ns/foo/sa/sleep', 'prefix-*', '*-suffix', '*'],
                notPrincipals: ['bad'],
                requestPrincipals: ['iss/sub'],
                notRequestPrincipals: ['*'],
                namespaces: ['foo', 'pre*'],
                notNamespaces: ['bar'],
                serviceAccounts: ['sleep', 'other/sa'],
                ipBlocks: ['10.0.0.0/8', '1.2.3.4'],
                notIpBlocks: ['10.1.0.0/16'],
                remoteIpBlocks: ['2001:db8::/32'],
                notRemoteIpBlocks: ['::1'],
              },
            },
          ],
          to: [
            {
              operation: {
                hosts: ['example.com', '*.example.com', '*'],
                notHosts: ['evil.example.com'],
                methods: ['GET'],
                notMethods: ['DELETE'],
                paths: ['/exact', '/prefix/*', '*/suffix', '*', '/api/{*}/items/{**}'],
                notPaths: ['/admin'],
                ports: ['8000'],
                notPorts: ['9000'],
              },
            },
          ],
          when: [
            { key: 'request.headers[X-Foo]', values: ['bar'], notValues: ['baz'] },
            { key: 'source.ip', values: ['10.0.0.1'] },
            { key: 'remote.ip', values: ['192.168.0.0/16'] },
            { key: 'source.namespace', values: ['foo'] },
            { key: 'source.principal', values: ['cluster.local/ns/foo/sa/sleep'] },
            { key: 'request.auth.principal', values: ['iss/sub'] },
            { key: 'request.auth.audiences', values: ['aud'] },
            { key: 'request.auth.presenter', values: ['azp'] },
            { key: 'request.auth.claims[groups]', values: ['admin'] },
            { key: 'request.auth.claims[nested][level]', values: ['2'] },
            { key: 'destination.ip', values: ['10.0.0.2'] },
            { key: 'destination.port', values: ['8000'] },
            { key: 'connection.sni', values: ['*.example.com'] },
            { key: 'experimental.envoy.filters.a.b[c]', values: ['[d]', 'e'] },
          ],
        },
      ],
    });
    const f = buildAuthorizationFilters([policy], WORKLOAD);
    // The only remark: on TCP the HTTP-only hosts make this ALLOW rule match nothing.
    expect(f.issues.map((i) => `${i.severity} ${i.field}`)).toEqual([
      'warning spec.rules[0].to[0].operation.hosts[0]',
    ]);
    expect(f.http).toHaveLength(1);
    expectEncodes(f);
    const cfg = f.http[0]!.typed_config as unknown as {
      rules: RbacRulesJson;
      shadow_rules_stat_prefix: string;
    };
    expect(f.http[0]!.name).toBe('envoy.filters.http.rbac');
    expect(f.http[0]!.typed_config['@type']).toBe(RBAC_HTTP_TYPE);
    expect(cfg.rules.action).toBeUndefined(); // ALLOW is the proto default, omitted as Istio does
    expect(cfg.shadow_rules_stat_prefix).toBe('istio_dry_run_allow_');
    const p = cfg.rules.policies!['ns[foo]-policy[full]-rule[0]']!;
    const perms = p.permissions[0]!.and_rules!.rules;
    // hosts, methods, paths, ports, then the when conditions that are permissions
    expect(perms[0]).toEqual({
      or_rules: {
        rules: [
          { header: { name: ':authority', string_match: { exact: 'example.com', ignore_case: true } } },
          { header: { name: ':authority', string_match: { suffix: '.example.com', ignore_case: true } } },
          { header: { name: ':authority', present_match: true } },
        ],
      },
    });
    expect(perms[1]).toEqual({
      not_rule: {
        or_rules: {
          rules: [
            {
              header: { name: ':authority', string_match: { exact: 'evil.example.com', ignore_case: true } },
            },
          ],
        },
      },
    });
    expect(perms[2]).toEqual({
      or_rules: { rules: [{ header: { name: ':method', string_match: { exact: 'GET' } } }] },
    });
    expect(perms[4]!.or_rules!.rules).toEqual([
      { url_path: { path: { exact: '/exact' } } },
      { url_path: { path: { prefix: '/prefix/' } } },
      { url_path: { path: { suffix: '/suffix' } } },
      { url_path: { path: { safe_regex: { regex: '.+' } } } },
      {
        uri_template: {
          name: 'uri-template',
          typed_config: {
            '@type': 'type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig',
            path_template: '/api/*/items/**',
          },
        },
      },
    ]);
    expect(perms[6]).toEqual({ or_rules: { rules: [{ destination_port: 8000 }] } });
    expect(perms[7]).toEqual({ not_rule: { or_rules: { rules: [{ destination_port: 9000 }] } } });
    expect(perms[8]).toEqual({
      or_rules: { rules: [{ destination_ip: { address_prefix: '10.0.0.2', prefix_len: 32 } }] },
    });
    expect(perms[10]).toEqual({
      or_rules: { rules: [{ requested_server_name: { suffix: '.example.com' } }] },
    });
    expect(perms[11]).toEqual({
      or_rules: {
        rules: [
          {
            metadata: {
              filter: 'envoy.filters.a.b',
              path: [{ key: 'c' }],
              value: { list_match: { one_of: { string_match: { exact: 'd' } } } },
            },
          },
          {
            metadata: {
              filter: 'envoy.filters.a.b',
              path: [{ key: 'c' }],
              value: { string_match: { exact: 'e' } },
            },
          },
        ],
      },
    });

    const ids = p.principals[0]!.and_ids!.ids;
    // principals, requestPrincipals, serviceAccounts, namespaces, remoteIpBlocks, ipBlocks, then when
    expect(ids[0]).toEqual({
      or_ids: {
        ids: [
          { authenticated: { principal_name: { exact: 'spiffe://cluster.local/ns/foo/sa/sleep' } } },
          { authenticated: { principal_name: { prefix: 'spiffe://prefix-' } } },
          { authenticated: { principal_name: { safe_regex: { regex: 'spiffe://.*-suffix' } } } },
          { authenticated: { principal_name: { safe_regex: { regex: '.+' } } } },
        ],
      },
    });
    expect(ids[2]).toEqual({
      or_ids: {
        ids: [
          {
            metadata: {
              filter: 'istio_authn',
              path: [{ key: 'request.auth.principal' }],
              value: { string_match: { exact: 'iss/sub' } },
            },
          },
        ],
      },
    });
    expect(ids[4]).toEqual({
      or_ids: {
        ids: [
          {
            authenticated: {
              principal_name: { safe_regex: { regex: 'spiffe://.+/ns/foo/(.+/|)sa/sleep(/.+)?' } },
            },
          },
          {
            authenticated: {
              principal_name: { safe_regex: { regex: 'spiffe://.+/ns/other/(.+/|)sa/sa(/.+)?' } },
            },
          },
        ],
      },
    });
    expect(ids[5]).toEqual({
      or_ids: {
        ids: [
          { authenticated: { principal_name: { safe_regex: { regex: '.*/ns/foo/.*' } } } },
          { authenticated: { principal_name: { safe_regex: { regex: '.*/ns/pre.*/.*' } } } },
        ],
      },
    });
    expect(ids[7]).toEqual({
      or_ids: { ids: [{ remote_ip: { address_prefix: '2001:db8::', prefix_len: 32 } }] },
    });
    expect(ids[8]).toEqual({
      not_id: { or_ids: { ids: [{ remote_ip: { address_prefix: '::1', prefix_len: 128 } }] } },
    });
    expect(ids[9]).toEqual({
      or_ids: {
        ids: [
          { direct_remote_ip: { address_prefix: '10.0.0.0', prefix_len: 8 } },
          { direct_remote_ip: { address_prefix: '1.2.3.4', prefix_len: 32 } },
        ],
      },
    });
    expect(ids[11]).toEqual({
      or_ids: { ids: [{ header: { name: 'X-Foo', string_match: { exact: 'bar' } } }] },
    });
    const claims = ids.filter((i) => JSON.stringify(i).includes('request.auth.claims'));
    expect(claims).toEqual([
      {
        or_ids: {
          ids: [
            {
              metadata: {
                filter: 'istio_authn',
                path: [{ key: 'request.auth.claims' }, { key: 'groups' }],
                value: { list_match: { one_of: { string_match: { exact: 'admin' } } } },
              },
            },
          ],
        },
      },
      {
        or_ids: {
          ids: [
            {
              metadata: {
                filter: 'istio_authn',
                path: [{ key: 'request.auth.claims' }, { key: 'nested' }, { key: 'level' }],
                value: { list_match: { one_of: { string_match: { exact: '2' } } } },
              },
            },
          ],
        },
      },
    ]);
  });

  it('orders filters CUSTOM (rbac shadow + ext_authz), AUDIT, DENY, ALLOW', () => {
    const policies = [
      ap('allow', { rules: [{}] }),
      ap('deny', { action: 'DENY', rules: [{ to: [{ operation: { paths: ['/admin'] } }] }] }),
      ap('audit', { action: 'AUDIT', rules: [{}] }),
      ap('custom', {
        action: 'CUSTOM',
        provider: { name: 'ext' },
        rules: [{ to: [{ operation: { paths: ['/ext'] } }] }],
      }),
    ];
    const f = buildAuthorizationFilters(policies, WORKLOAD, {
      meshConfig: {
        extensionProviders: [{ name: 'ext', envoyExtAuthzHttp: { service: 'foo/authz', port: 9000 } }],
      },
    });
    expect(f.issues.filter((i) => i.severity === 'error')).toEqual([]);
    expect(f.issues.map((i) => i.message)).toContain(
      'the HTTP extension provider "ext" cannot check TCP connections; CUSTOM policies do not apply on TCP filter chains',
    );
    expectEncodes(f);
    expect(f.http.map((x) => x.name)).toEqual([
      'envoy.filters.http.rbac',
      'envoy.filters.http.ext_authz',
      'envoy.filters.http.rbac',
      'envoy.filters.http.rbac',
      'envoy.filters.http.rbac',
    ]);
    const custom = f.http[0]!.typed_config;
    expect(custom.rules).toBeUndefined();
    expect(custom.shadow_rules_stat_prefix).toBe('istio_ext_authz_');
    expect(Object.keys((custom.shadow_rules as RbacRulesJson).policies!)).toEqual([
      'istio-ext-authz-ns[foo]-policy[custom]-rule[0]',
    ]);
    expect(f.http[1]!.typed_config).toMatchObject({
      '@type': EXT_AUTHZ_HTTP_TYPE,
      transport_api_version: 'V3',
      http_service: {
        server_uri: {
          uri: 'http://authz.foo.svc.cluster.local',
          cluster: 'outbound|9000||authz.foo.svc.cluster.local',
          timeout: '600s',
        },
      },
      filter_enabled_metadata: {
        filter: 'envoy.filters.http.rbac',
        path: [{ key: 'istio_ext_authz_shadow_effective_policy_id' }],
        value: { string_match: { prefix: 'istio-ext-authz' } },
      },
    });
    expect((f.http[2]!.typed_config.rules as RbacRulesJson).action).toBe('LOG');
    expect((f.http[3]!.typed_config.rules as RbacRulesJson).action).toBe('DENY');
    expect((f.http[4]!.typed_config.rules as RbacRulesJson).action).toBeUndefined();
    // TCP: the HTTP authorizer cannot check connections; AUDIT/DENY/ALLOW network filters follow.
    expect(f.tcp.map((x) => x.typed_config['@type'])).toEqual([
      RBAC_NETWORK_TYPE,
      RBAC_NETWORK_TYPE,
      RBAC_NETWORK_TYPE,
    ]);
    expect(f.tcp.every((x) => x.typed_config.stat_prefix === 'tcp.')).toBe(true);
  });

  it('puts dry-run policies in shadow_rules with the Istio stat prefixes', () => {
    const f = buildAuthorizationFilters(
      [
        ap('enforced', { rules: [{ to: [{ operation: { paths: ['/a'] } }] }] }),
        ap('dry-allow', { rules: [{ to: [{ operation: { paths: ['/b'] } }] }] }, DRY),
        ap('dry-deny', { action: 'DENY', rules: [{}] }, DRY),
      ],
      WORKLOAD,
    );
    expectEncodes(f);
    const [deny, allow] = f.http.map((x) => x.typed_config);
    expect(deny!.rules).toBeUndefined();
    expect(deny!.shadow_rules).toMatchObject({ action: 'DENY' });
    expect(deny!.shadow_rules_stat_prefix).toBe('istio_dry_run_deny_');
    expect(Object.keys((allow!.rules as RbacRulesJson).policies!)).toEqual([
      'ns[foo]-policy[enforced]-rule[0]',
    ]);
    expect(Object.keys((allow!.shadow_rules as RbacRulesJson).policies!)).toEqual([
      'ns[foo]-policy[dry-allow]-rule[0]',
    ]);
    expect(allow!.shadow_rules_stat_prefix).toBe('istio_dry_run_allow_');
  });

  it('gives a policy without rules a never-matching policy, and an empty rule an any/any policy', () => {
    const f = buildAuthorizationFilters([ap('none', {}), ap('all', { rules: [{}] })], WORKLOAD);
    expectEncodes(f);
    const policies = (f.http[0]!.typed_config.rules as RbacRulesJson).policies!;
    expect(policies['ns[foo]-policy[none]-rule[0]']).toEqual({
      permissions: [{ not_rule: { any: true } }],
      principals: [{ not_id: { any: true } }],
    });
    expect(policies['ns[foo]-policy[all]-rule[0]']).toEqual({
      permissions: [{ and_rules: { rules: [{ any: true }] } }],
      principals: [{ and_ids: { ids: [{ any: true }] } }],
    });
  });

  it('on TCP skips ALLOW rules with HTTP-only fields and widens DENY rules, with warnings', () => {
    const f = buildAuthorizationFilters(
      [
        ap('allow-http', { rules: [{ to: [{ operation: { methods: ['GET'], ports: ['8000'] } }] }] }),
        ap('deny-http', {
          action: 'DENY',
          rules: [
            {
              to: [{ operation: { paths: ['/admin'], ports: ['9000'] } }],
              when: [{ key: 'request.headers[x]', values: ['y'] }],
            },
          ],
        }),
      ],
      WORKLOAD,
    );
    expectEncodes(f);
    const [deny, allow] = f.tcp.map((x) => x.typed_config.rules as RbacRulesJson);
    expect(allow!.policies).toEqual({});
    expect(deny!.policies!['ns[foo]-policy[deny-http]-rule[0]']).toEqual({
      permissions: [{ and_rules: { rules: [{ or_rules: { rules: [{ destination_port: 9000 }] } }] } }],
      principals: [{ and_ids: { ids: [{ any: true }] } }],
    });
    const messages = f.issues.map((i) => `${i.severity} ${i.resource}: ${i.field}: ${i.message}`);
    expect(messages).toContain(
      'warning AuthorizationPolicy foo/allow-http: spec.rules[0].to[0].operation.methods[0]: ":method" is HTTP only: on a TCP filter chain this ALLOW rule is skipped (it matches nothing)',
    );
    expect(messages).toContain(
      'warning AuthorizationPolicy foo/deny-http: spec.rules[0].to[0].operation.paths[0]: "path" is HTTP only: ignored on a TCP filter chain, so this DENY rule matches more',
    );
  });

  it('rejects invalid values and unknown condition keys with clear messages, skipping what Istio skips', () => {
    const f = buildAuthorizationFilters(
      [
        ap('bad-cidr', { rules: [{ from: [{ source: { ipBlocks: ['10.0.0.0/33'] } }] }] }),
        ap('bad-key', { action: 'DENY', rules: [{ when: [{ key: 'request.colour', values: ['red'] }] }] }),
        ap('bad-deny-value', {
          action: 'DENY',
          rules: [{ from: [{ source: { ipBlocks: ['nope', '10.0.0.0/8'] } }] }],
        }),
      ],
      WORKLOAD,
    );
    expectEncodes(f);
    const text = f.issues.map((i) => `${i.resource}: ${i.field}: ${i.message}`);
    expect(text).toContain(
      'AuthorizationPolicy foo/bad-cidr: spec.rules[0].from[0].source.ipBlocks[0]: "10.0.0.0/33" is not a valid CIDR block: prefix length must be 0..32; the ALLOW rule is skipped',
    );
    expect(
      text.find((t) =>
        t.startsWith(
          'AuthorizationPolicy foo/bad-key: spec.rules[0].when[0].key: unknown condition key "request.colour"',
        ),
      ),
    ).toBeDefined();
    expect(text).toContain(
      'AuthorizationPolicy foo/bad-deny-value: spec.rules[0].from[0].source.ipBlocks[0]: "nope" is not a valid IP address or CIDR block; the value is ignored, so this DENY rule matches more',
    );
    const deny = f.http[0]!.typed_config.rules as RbacRulesJson;
    expect(Object.keys(deny.policies!)).toEqual(['ns[foo]-policy[bad-deny-value]-rule[0]']);
    const allow = f.http[1]!.typed_config.rules as RbacRulesJson;
    expect(allow.policies).toEqual({});
  });

  it('turns a CUSTOM policy naming an unknown provider into DENY rules for its matches', () => {
    const f = buildAuthorizationFilters(
      [
        ap('c', {
          action: 'CUSTOM',
          provider: { name: 'missing' },
          rules: [{ to: [{ operation: { paths: ['/x'] } }] }],
        }),
      ],
      WORKLOAD,
    );
    expectEncodes(f);
    expect(f.http).toHaveLength(1);
    expect(f.http[0]!.typed_config.rules).toMatchObject({
      action: 'DENY',
      policies: { 'istio-ext-authz-ns[foo]-policy[c]-rule[0]-deny-due-to-bad-CUSTOM-action': {} },
    });
    expect(f.issues[0]!.message).toMatch(
      /extension provider "missing" used by AuthorizationPolicy foo\/c is not defined in mesh config/,
    );
  });

  it('builds gRPC ext_authz for HTTP and TCP, and all provider fields for HTTP authorizers', () => {
    const grpc = buildAuthorizationFilters(
      [ap('c', { action: 'CUSTOM', provider: { name: 'g' }, rules: [{}] })],
      WORKLOAD,
      {
        meshConfig: {
          extensionProviders: [
            {
              name: 'g',
              envoyExtAuthzGrpc: {
                service: 'authz.foo.svc.cluster.local',
                port: 9001,
                failOpen: true,
                timeout: '2s',
              },
            },
          ],
        },
      },
    );
    expectEncodes(grpc);
    expect(grpc.tcp.map((x) => x.name)).toEqual([
      'envoy.filters.network.rbac',
      'envoy.filters.network.ext_authz',
    ]);
    expect(grpc.tcp[1]!.typed_config).toMatchObject({
      stat_prefix: 'tcp.',
      failure_mode_allow: true,
      grpc_service: {
        envoy_grpc: {
          cluster_name: 'outbound|9001||authz.foo.svc.cluster.local',
          authority: 'outbound_.9001_._.authz.foo.svc.cluster.local',
        },
        timeout: '2s',
      },
    });

    const httpAll = buildAuthorizationFilters(
      [ap('c', { action: 'CUSTOM', provider: { name: 'h' }, rules: [{}] })],
      WORKLOAD,
      {
        meshConfig: {
          extensionProviders: [
            {
              name: 'h',
              envoyExtAuthzHttp: {
                service: 'foo/authz',
                port: 8000,
                timeout: '10s',
                pathPrefix: '/check',
                failOpen: true,
                statusOnError: '503',
                includeRequestHeadersInCheck: ['x-custom-id', 'x-prefix-*', '*-suffix'],
                includeAdditionalHeadersInCheck: { 'x-b': '2', 'x-a': '1' },
                includeRequestBodyInCheck: {
                  maxRequestBytes: 2048,
                  allowPartialMessage: true,
                  packAsBytes: true,
                },
                headersToUpstreamOnAllow: ['authorization'],
                headersToDownstreamOnDeny: ['set-cookie'],
                headersToDownstreamOnAllow: ['x-ok'],
              },
            },
          ],
        },
      },
    );
    expectEncodes(httpAll);
    expect(httpAll.http[1]!.typed_config).toMatchObject({
      failure_mode_allow: true,
      status_on_error: { code: 'ServiceUnavailable' },
      with_request_body: { max_request_bytes: 2048, allow_partial_message: true, pack_as_bytes: true },
      allowed_headers: {
        patterns: [
          { exact: 'x-custom-id', ignore_case: true },
          { prefix: 'x-prefix-', ignore_case: true },
          { suffix: '-suffix', ignore_case: true },
        ],
      },
      http_service: {
        path_prefix: '/check',
        server_uri: { timeout: '10s' },
        authorization_request: {
          headers_to_add: [
            { key: 'x-a', value: '1' },
            { key: 'x-b', value: '2' },
          ],
        },
        authorization_response: {
          allowed_upstream_headers: { patterns: [{ exact: 'authorization', ignore_case: true }] },
          allowed_client_headers: { patterns: [{ exact: 'set-cookie', ignore_case: true }] },
          allowed_client_headers_on_success: { patterns: [{ exact: 'x-ok', ignore_case: true }] },
        },
      },
    });
    expect(
      encodeMessage(EXT_AUTHZ_HTTP_TYPE, { ...httpAll.http[1]!.typed_config, '@type': undefined }),
    ).toBeInstanceOf(Uint8Array);
  });

  it('reports a provider that cannot be built', () => {
    const f = buildAuthorizationFilters(
      [ap('c', { action: 'CUSTOM', provider: { name: 'h' }, rules: [{}] })],
      WORKLOAD,
      {
        meshConfig: {
          extensionProviders: [
            {
              name: 'h',
              envoyExtAuthzHttp: { service: 'foo/authz', port: 0, statusOnError: '999', pathPrefix: 'check' },
            },
          ],
        },
      },
    );
    expectEncodes(f);
    expect(f.issues[0]!.message).toContain('port must be in the range [1, 65535], found: 0');
    expect(f.issues[0]!.message).toContain('unsupported statusOnError 999');
    expect(f.issues[0]!.message).toContain('pathPrefix must begin with `/`');
  });
});

describe('AuthorizationPolicy selection', () => {
  const root = { namespace: 'istio-system' };
  it('takes the workload namespace and the root namespace, by selector', () => {
    const s = selectAuthorizationPolicies(
      [
        ap('ns-wide', { rules: [{}] }),
        ap('selected', { selector: { matchLabels: { app: 'httpbin' } }, rules: [{}] }),
        ap('other-app', { selector: { matchLabels: { app: 'other' } }, rules: [{}] }),
        ap('mesh', { action: 'DENY', rules: [{}] }, root),
        ap(
          'mesh-selected',
          { action: 'AUDIT', selector: { matchLabels: { version: 'v1' } }, rules: [{}] },
          root,
        ),
        ap('elsewhere', { rules: [{}] }, { namespace: 'bar' }),
        ap(
          'custom-root',
          { action: 'CUSTOM', provider: { name: 'x' }, rules: [{}] },
          { namespace: 'mesh-root' },
        ),
      ],
      WORKLOAD,
    );
    expect(s.allow.map((p) => p.metadata.name)).toEqual(['ns-wide', 'selected']);
    expect(s.deny.map((p) => p.metadata.name)).toEqual(['mesh']);
    expect(s.audit.map((p) => p.metadata.name)).toEqual(['mesh-selected']);
    expect(s.custom).toEqual([]);
    const other = selectAuthorizationPolicies(
      [
        ap(
          'custom-root',
          { action: 'CUSTOM', provider: { name: 'x' }, rules: [{}] },
          { namespace: 'mesh-root' },
        ),
      ],
      WORKLOAD,
      { rootNamespace: 'mesh-root' },
    );
    expect(other.custom.map((p) => p.metadata.name)).toEqual(['custom-root']);
  });

  it('attaches targetRefs to Gateway API gateways and waypoints only, and rejects selector with targetRefs', () => {
    const gw = { namespace: NS, labels: { 'gateway.networking.k8s.io/gateway-name': 'gw' } };
    const policies = [
      ap('to-gw', {
        targetRefs: [{ group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'gw' }],
        rules: [{}],
      }),
      ap('to-other-gw', {
        targetRef: { group: 'gateway.networking.k8s.io', kind: 'Gateway', name: 'other' },
        rules: [{}],
      }),
      ap('to-svc', { targetRefs: [{ kind: 'Service', name: 'httpbin' }], rules: [{}] }),
      ap('selector', { selector: { matchLabels: { app: 'httpbin' } }, rules: [{}] }),
      ap('both', {
        selector: { matchLabels: { app: 'httpbin' } },
        targetRefs: [{ kind: 'Service', name: 'httpbin' }],
        rules: [{}],
      }),
    ];
    expect(selectAuthorizationPolicies(policies, gw).allow.map((p) => p.metadata.name)).toEqual(['to-gw']);
    const sidecar = selectAuthorizationPolicies(policies, WORKLOAD);
    expect(sidecar.allow.map((p) => p.metadata.name)).toEqual(['selector']);
    expect(sidecar.issues).toEqual([
      {
        severity: 'error',
        resource: 'AuthorizationPolicy foo/both',
        field: 'spec',
        message:
          'only one of selector, targetRef or targetRefs may be set, found selector and targetRefs; the policy is ignored',
      },
    ]);
    const waypoint = selectAuthorizationPolicies(policies, {
      namespace: NS,
      isWaypoint: true,
      services: [{ name: 'httpbin', namespace: NS }],
    });
    expect(waypoint.allow.map((p) => p.metadata.name)).toEqual(['to-svc']);
  });
});
