import { describe, expect, it } from 'vitest';
import { ConfigError } from '../src/config/errors.js';
import { findRoute, type MatchInput, RouteTable } from '../src/config/route-table.js';

function input(path: string, headers: Record<string, string> = {}, method = 'GET'): MatchInput {
  const q = path.indexOf('?');
  return {
    path,
    pathOnly: q >= 0 ? path.slice(0, q) : path,
    header: (n) => (n === ':method' ? method : headers[n]),
    query: () => new URLSearchParams(q >= 0 ? path.slice(q + 1) : ''),
  };
}

const fwd = (cluster: string) => ({ cluster, timeout: '0s' });

describe('route tables compiled from RouteConfiguration', () => {
  it("finds virtual hosts in Envoy's order: exact, suffix wildcard, prefix wildcard, then *", () => {
    const t = RouteTable.compile({
      name: '80',
      virtual_hosts: [
        { name: 'any', domains: ['*'], routes: [{ match: { prefix: '/' }, route: fwd('any') }] },
        { name: 'suffix', domains: ['*.example.com'], routes: [{ match: { prefix: '/' }, route: fwd('s') }] },
        {
          name: 'longer-suffix',
          domains: ['*.api.example.com'],
          routes: [{ match: { prefix: '/' }, route: fwd('s2') }],
        },
        { name: 'prefix', domains: ['reviews:*'], routes: [{ match: { prefix: '/' }, route: fwd('p') }] },
        {
          name: 'exact',
          domains: ['reviews', 'reviews:9080'],
          routes: [{ match: { prefix: '/' }, route: fwd('e') }],
        },
      ],
    });
    expect(t.findVirtualHost('reviews:9080')?.name).toBe('exact');
    expect(t.findVirtualHost('REVIEWS')?.name).toBe('exact');
    expect(t.findVirtualHost('reviews:1234')?.name).toBe('prefix');
    expect(t.findVirtualHost('a.api.example.com')?.name).toBe('longer-suffix');
    expect(t.findVirtualHost('www.example.com')?.name).toBe('suffix');
    expect(t.findVirtualHost('example.com')?.name).toBe('any');
  });

  it('matches the first route whose path, headers and query parameters all match', () => {
    const t = RouteTable.compile({
      name: '9080',
      virtual_hosts: [
        {
          name: 'reviews',
          domains: ['*'],
          routes: [
            {
              name: 'jason',
              match: { prefix: '/', headers: [{ name: 'end-user', string_match: { exact: 'jason' } }] },
              route: fwd('v2'),
            },
            { name: 'exact', match: { path: '/reviews/0' }, route: fwd('exact') },
            { name: 'regex', match: { safe_regex: { regex: '/ratings/[0-9]+' } }, route: fwd('regex') },
            {
              name: 'query',
              match: { prefix: '/q', query_parameters: [{ name: 'debug', string_match: { exact: '1' } }] },
              route: fwd('query'),
            },
            {
              name: 'not-admin',
              match: {
                prefix: '/admin',
                headers: [{ name: 'x-admin', present_match: true, invert_match: true }],
              },
              direct_response: { status: 403 },
            },
            { name: 'ci', match: { prefix: '/UPPER', case_sensitive: false }, route: fwd('ci') },
            {
              name: 'post',
              match: { prefix: '/', headers: [{ name: ':method', string_match: { exact: 'POST' } }] },
              route: fwd('post'),
            },
            { name: 'default', match: { prefix: '/' }, route: fwd('v1') },
          ],
        },
      ],
    });
    const vh = t.findVirtualHost('reviews')!;
    const route = (path: string, headers?: Record<string, string>, method?: string) =>
      findRoute(vh, input(path, headers, method))?.name;
    expect(route('/reviews/0', { 'end-user': 'jason' })).toBe('jason');
    expect(route('/reviews/0', { 'end-user': 'jasonx' })).toBe('exact');
    expect(route('/reviews/0?x=1')).toBe('exact');
    expect(route('/reviews/01')).toBe('default');
    expect(route('/ratings/42')).toBe('regex');
    expect(route('/ratings/42/x')).toBe('default');
    expect(route('/q?debug=1')).toBe('query');
    expect(route('/q?debug=2')).toBe('default');
    expect(route('/admin/x')).toBe('not-admin');
    expect(route('/admin/x', { 'x-admin': 'y' })).toBe('default');
    expect(route('/upper/case')).toBe('ci');
    expect(route('/anything', {}, 'POST')).toBe('post');
  });

  it('rejects what Envoy rejects, naming the resource and field', () => {
    expect(() =>
      RouteTable.compile({
        name: 'bad',
        virtual_hosts: [
          {
            name: 'a',
            domains: ['*'],
            routes: [{ match: { safe_regex: { regex: '(unclosed' } }, route: fwd('x') }],
          },
        ],
      }),
    ).toThrow(
      /route configuration bad\.virtual_hosts\[0\] \(a\)\.routes\[0\]\.match\.safe_regex: invalid RE2 regex/,
    );
    expect(() =>
      RouteTable.compile({
        name: 'dup',
        virtual_hosts: [
          { name: 'a', domains: ['x'], routes: [] },
          { name: 'b', domains: ['x'], routes: [] },
        ],
      }),
    ).toThrow(ConfigError);
    expect(() =>
      RouteTable.compile({
        name: 'weights',
        virtual_hosts: [
          {
            name: 'a',
            domains: ['*'],
            routes: [
              {
                match: { prefix: '/' },
                route: { weighted_clusters: { clusters: [{ name: 'x', weight: 0 }] } },
              },
            ],
          },
        ],
      }),
    ).toThrow(/weights sum to zero/);
    expect(() =>
      RouteTable.compile({
        name: 'retry',
        virtual_hosts: [
          {
            name: 'a',
            domains: ['*'],
            routes: [
              { match: { prefix: '/' }, route: { cluster: 'x', retry_policy: { retry_on: '5xx,bogus' } } },
            ],
          },
        ],
      }),
    ).toThrow(/unknown retry condition "bogus"/);
  });

  it('uses Envoy defaults: a 15s timeout when none is given, one retry when a policy names no count', () => {
    const t = RouteTable.compile({
      name: 'd',
      virtual_hosts: [
        {
          name: 'a',
          domains: ['*'],
          routes: [{ match: { prefix: '/' }, route: { cluster: 'x', retry_policy: { retry_on: '5xx' } } }],
        },
      ],
    });
    const action = t.virtualHosts[0]!.routes[0]!.action;
    expect(action.kind).toBe('forward');
    if (action.kind === 'forward') {
      expect(action.timeoutMs).toBe(15_000);
      expect(action.retry?.numRetries).toBe(1);
    }
  });
});
