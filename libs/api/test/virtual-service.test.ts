import { describe, expect, it } from 'vitest';
import { errorsOf, issuesOf, warningsOf } from './helpers.js';

const dest = (host = 'reviews', extra: Record<string, unknown> = {}) => ({ destination: { host, ...extra } });
const vs = (http: unknown[], more: Record<string, unknown> = {}) => ({ hosts: ['reviews'], http, ...more });
const route = (extra: Record<string, unknown> = {}) => ({ route: [dest()], ...extra });

function error(path: string, message: string) {
  return { severity: 'error', path, message };
}

describe('VirtualService structure', () => {
  it('accepts a complete, valid VirtualService', () => {
    const spec = {
      hosts: ['reviews', 'reviews.example.com'],
      gateways: ['mesh', 'istio-system/ingress'],
      exportTo: ['.'],
      http: [
        {
          name: 'canary',
          match: [
            {
              name: 'jason',
              uri: { prefix: '/reviews' },
              method: { exact: 'GET' },
              headers: { 'end-user': { exact: 'jason' }, 'x-present': {} },
              queryParams: { debug: { regex: '^(1|true)$' } },
              withoutHeaders: { 'x-skip': { prefix: 'y' } },
              sourceLabels: { app: 'productpage' },
              sourceNamespace: 'default',
              port: 9080,
              ignoreUriCase: true,
            },
          ],
          route: [
            {
              ...dest('reviews', { subset: 'v1', port: { number: 9080 } }),
              weight: 75,
              headers: { request: { set: { 'x-v': '1' } } },
            },
            { ...dest('reviews', { subset: 'v2' }), weight: 25 },
          ],
          timeout: '1.5s',
          retries: {
            attempts: 3,
            perTryTimeout: '500ms',
            retryOn: '5xx,connect-failure,503',
            retryRemoteLocalities: true,
          },
          fault: {
            delay: { fixedDelay: '7s', percentage: { value: 0.5 } },
            abort: { httpStatus: 503, percentage: { value: 1 } },
          },
          mirror: { host: 'shadow' },
          mirrorPercentage: { value: 10 },
          corsPolicy: {
            allowOrigins: [{ exact: 'https://example.com' }, { regex: 'https://.*\\.example\\.com' }],
            allowMethods: ['GET', 'POST'],
            allowHeaders: ['x-custom', '*'],
            maxAge: '24h',
            allowCredentials: true,
          },
          headers: { request: { add: { 'x-a': 'b' }, remove: ['x-c'] }, response: { set: { 'x-d': 'e' } } },
          rewrite: { uri: '/v1', authority: 'reviews.internal' },
        },
        {
          match: [{ uri: { prefix: '/old' } }],
          redirect: { uri: '/new', authority: 'new.example.com', redirectCode: 308 },
        },
        {
          match: [{ uri: { exact: '/teapot' } }],
          directResponse: { status: 418, body: { string: 'short and stout' } },
        },
        {
          match: [{ uri: { regex: '^/api/v[0-9]+/.*' } }],
          rewrite: { uriRegexRewrite: { match: '^/api/v[0-9]+', rewrite: '/api' } },
          route: [dest()],
        },
        route(),
      ],
      tcp: [{ match: [{ port: 3306, destinationSubnets: ['10.0.0.0/8'] }], route: [dest('mysql')] }],
    };
    expect(issuesOf('VirtualService', spec)).toEqual([]);
  });

  it('rejects unknown fields everywhere, suggesting the intended one', () => {
    expect(errorsOf('VirtualService', vs([{ rout: [dest()] }]))).toContainEqual(
      error('spec.http[0].rout', 'unknown field "rout" (did you mean "route"?)'),
    );
    expect(errorsOf('VirtualService', { ...vs([route()]), hostz: ['a'] })).toEqual([
      error('spec.hostz', 'unknown field "hostz" (did you mean "hosts"?)'),
    ]);
    expect(
      errorsOf('VirtualService', vs([{ route: [{ destination: { host: 'a', subsett: 'v1' } }] }])),
    ).toEqual([
      error('spec.http[0].route[0].destination.subsett', 'unknown field "subsett" (did you mean "subset"?)'),
    ]);
    expect(errorsOf('VirtualService', vs([{ route: [dest()], nonsense: 1 }]))).toEqual([
      error('spec.http[0].nonsense', 'unknown field "nonsense"'),
    ]);
  });

  it('rejects wrong types with what was expected and what was found', () => {
    expect(errorsOf('VirtualService', { hosts: 'reviews', http: [route()] })).toEqual([
      error('spec.hosts', 'expected a list, got string'),
    ]);
    expect(errorsOf('VirtualService', vs([{ route: [{ destination: { host: 8080 } }] }]))).toEqual([
      error('spec.http[0].route[0].destination.host', 'expected a string, got number'),
    ]);
    expect(errorsOf('VirtualService', vs([{ route: [{ ...dest(), weight: '50' }] }]))).toEqual([
      error('spec.http[0].route[0].weight', 'expected a number, got string'),
    ]);
    expect(errorsOf('VirtualService', vs([{ route: [dest()], match: [{ ignoreUriCase: 'yes' }] }]))).toEqual([
      error('spec.http[0].match[0].ignoreUriCase', 'expected true or false, got string'),
    ]);
    expect(errorsOf('VirtualService', vs([{ route: null }]))).toContainEqual(
      error('spec.http[0].route', 'expected a list, got null (an empty value)'),
    );
  });

  it('requires destination.host', () => {
    expect(errorsOf('VirtualService', vs([{ route: [{ destination: { subset: 'v1' } }] }]))).toEqual([
      error('spec.http[0].route[0].destination.host', 'required field "host" is missing'),
    ]);
    expect(errorsOf('VirtualService', vs([{ route: [{ weight: 100 }] }]))).toEqual([
      error('spec.http[0].route[0].destination', 'required field "destination" is missing'),
    ]);
  });
});

describe('VirtualService hosts and gateways', () => {
  it('requires hosts unless the VirtualService is a delegate', () => {
    expect(warningsOf('VirtualService', { http: [route()] })).toEqual([
      {
        severity: 'warning',
        path: 'spec.hosts',
        message: 'no hosts: this VirtualService only takes effect as the delegate of another VirtualService',
      },
    ]);
    expect(errorsOf('VirtualService', { gateways: ['gw'], http: [route()] })).toEqual([
      error(
        'spec.hosts',
        'hosts is required (only a delegate VirtualService has no hosts, and it cannot name gateways)',
      ),
    ]);
    expect(errorsOf('VirtualService', { tcp: [{ route: [dest()] }] })).toEqual([
      error(
        'spec.hosts',
        'hosts is required (only a delegate VirtualService has no hosts, and it cannot have tcp routes)',
      ),
    ]);
  });

  it('validates hosts like Istio: short names, FQDNs and wildcard prefixes; IPs allowed', () => {
    const ok = ['reviews', 'reviews.default.svc.cluster.local', '*.example.com', '10.0.0.1', 'istio.io.'];
    expect(errorsOf('VirtualService', { hosts: ok, http: [route()] })).toEqual([]);
    expect(errorsOf('VirtualService', { hosts: ['foo.*.com'], http: [route()] })).toEqual([
      error(
        'spec.hosts[0]',
        'invalid host "foo.*.com": a wildcard is only allowed as the first label ("*.example.com")',
      ),
    ]);
    expect(errorsOf('VirtualService', { hosts: ['bad_host'], http: [route()] })).toEqual([
      error(
        'spec.hosts[0]',
        'invalid host "bad_host": label "bad_host" is not a valid DNS label (use letters, digits and "-", starting and ending with a letter or digit)',
      ),
    ]);
    expect(errorsOf('VirtualService', { hosts: ['a.123'], http: [route()] })).toEqual([
      error('spec.hosts[0]', 'invalid host "a.123": the top-level domain "123" cannot be all digits'),
    ]);
  });

  it('allows "*" only when bound to gateways', () => {
    expect(errorsOf('VirtualService', { hosts: ['*'], http: [route()] })).toEqual([
      error(
        'spec.hosts[0]',
        '"*" is only allowed in a VirtualService bound to gateways (add gateways, or name the hosts)',
      ),
    ]);
    expect(
      errorsOf('VirtualService', { hosts: ['*'], gateways: ['mesh', 'gw'], http: [route()] }),
    ).toHaveLength(1);
    expect(errorsOf('VirtualService', { hosts: ['*'], gateways: ['gw'], http: [route()] })).toEqual([]);
  });

  it('rejects duplicate and overlapping hosts', () => {
    expect(
      errorsOf('VirtualService', { hosts: ['*.example.com', 'a.example.com'], http: [route()] }),
    ).toEqual([error('spec.hosts[1]', 'duplicate host: "a.example.com" overlaps "*.example.com"')]);
  });

  it('validates gateway references', () => {
    expect(errorsOf('VirtualService', vs([route()], { gateways: ['ns/', 'Bad_NS/gw'] }))).toEqual([
      error('spec.gateways[0]', '"ns/": namespace and gateway name must not be empty'),
      error(
        'spec.gateways[1]',
        'namespace "Bad_NS" is not a valid DNS label: use letters, digits and "-", starting and ending with a letter or digit',
      ),
    ]);
    expect(warningsOf('VirtualService', vs([route()], { gateways: ['gw.istio-system'] }))).toEqual([
      {
        severity: 'warning',
        path: 'spec.gateways[0]',
        message: '"gw.istio-system" uses the legacy gateway.namespace form; prefer "istio-system/gw"',
      },
    ]);
  });

  it('needs at least one route', () => {
    expect(errorsOf('VirtualService', { hosts: ['reviews'] })).toEqual([
      error('spec', 'at least one of http, tcp or tls routes is required'),
    ]);
  });

  it('validates exportTo', () => {
    expect(errorsOf('VirtualService', vs([route()], { exportTo: ['*', 'other'] }))).toEqual([
      error('spec.exportTo', '"*" exports to every namespace and cannot be combined with other entries'),
    ]);
    expect(errorsOf('VirtualService', vs([route()], { exportTo: ['.', 'default'] }))).toEqual([
      error('spec.exportTo', '"." and "default" are the same namespace'),
    ]);
    expect(errorsOf('VirtualService', vs([route()], { exportTo: ['~'] }))[0]!.path).toBe('spec.exportTo');
  });
});

describe('HTTP routes', () => {
  it('needs exactly one of route, redirect, directResponse or delegate', () => {
    expect(errorsOf('VirtualService', vs([{ match: [{ uri: { prefix: '/' } }] }]))).toEqual([
      error('spec.http[0]', 'one of route, redirect, directResponse or delegate is required'),
    ]);
    expect(errorsOf('VirtualService', vs([{ route: [dest()], redirect: { uri: '/x' } }]))).toEqual([
      error(
        'spec.http[0]',
        'only one of route, redirect, directResponse or delegate may be set, found route and redirect',
      ),
    ]);
    expect(
      errorsOf('VirtualService', vs([{ directResponse: { status: 200 }, delegate: { name: 'd' } }])),
    ).toEqual([
      error(
        'spec.http[0]',
        'only one of route, redirect, directResponse or delegate may be set, found directResponse and delegate',
      ),
    ]);
  });

  it('checks weights: each 0-100, and several destinations must add up to 100', () => {
    expect(errorsOf('VirtualService', vs([{ route: [{ ...dest(), weight: 120 }] }]))).toEqual([
      error('spec.http[0].route[0].weight', 'must be between 0 and 100, got 120'),
    ]);
    expect(errorsOf('VirtualService', vs([{ route: [{ ...dest(), weight: -1 }] }]))).toEqual([
      error('spec.http[0].route[0].weight', 'must be between 0 and 100, got -1'),
    ]);
    expect(errorsOf('VirtualService', vs([{ route: [{ ...dest(), weight: 50.5 }] }]))).toEqual([
      error('spec.http[0].route[0].weight', 'must be a whole number, got 50.5'),
    ]);
    expect(
      errorsOf(
        'VirtualService',
        vs([
          {
            route: [
              { ...dest('a'), weight: 80 },
              { ...dest('b'), weight: 10 },
            ],
          },
        ]),
      ),
    ).toEqual([
      error(
        'spec.http[0].route',
        'weights of a route with several destinations must add up to 100, got 80 + 10 = 90',
      ),
    ]);
    expect(errorsOf('VirtualService', vs([{ route: [dest('a'), dest('b')] }]))).toEqual([
      error(
        'spec.http[0].route',
        'weights of a route with several destinations must add up to 100, got 0 + 0 = 0',
      ),
    ]);
    expect(
      errorsOf(
        'VirtualService',
        vs([
          {
            route: [
              { ...dest('a'), weight: 0 },
              { ...dest('b'), weight: 100 },
            ],
          },
        ]),
      ),
    ).toEqual([]);
    expect(errorsOf('VirtualService', vs([{ route: [{ ...dest(), weight: 30 }] }]))).toEqual([]);
  });

  it('checks destinations: not "*", valid subset names and ports', () => {
    expect(errorsOf('VirtualService', vs([{ route: [dest('*')] }]))).toEqual([
      error('spec.http[0].route[0].destination.host', '"*" is not a valid destination host; name a service'),
    ]);
    expect(errorsOf('VirtualService', vs([{ route: [dest('reviews', { subset: 'v_1' })] }]))).toEqual([
      error(
        'spec.http[0].route[0].destination.subset',
        'subset name "v_1" is not a valid DNS label: use letters, digits and "-", starting and ending with a letter or digit',
      ),
    ]);
    expect(
      errorsOf('VirtualService', vs([{ route: [dest('reviews', { port: { number: 70000 } })] }])),
    ).toEqual([
      error(
        'spec.http[0].route[0].destination.port.number',
        'must be a port number between 1 and 65535, got 70000',
      ),
    ]);
  });

  it('compiles every regex with RE2 and says why one is invalid', () => {
    const bad = (m: unknown) => errorsOf('VirtualService', vs([{ match: [m], route: [dest()] }]));
    const reason = (re: string, why: string) =>
      `invalid regular expression "${re}": ${why} (Envoy uses RE2 syntax: https://github.com/google/re2/wiki/Syntax)`;
    expect(bad({ uri: { regex: '/api/(v1' } })).toEqual([
      error('spec.http[0].match[0].uri.regex', reason('/api/(v1', 'missing ): /api/(v1')),
    ]);
    // Lookbehind works in JavaScript but not in RE2 (and so not in Envoy).
    expect(bad({ headers: { 'x-user': { regex: '(?<=a)b' } } })).toEqual([
      error('spec.http[0].match[0].headers["x-user"].regex', reason('(?<=a)b', 'invalid perl operator: (?<')),
    ]);
    expect(bad({ queryParams: { q: { regex: 'a**' } } })[0]!.path).toBe(
      'spec.http[0].match[0].queryParams.q.regex',
    );
    expect(bad({ authority: { regex: '[z-a]' } })[0]!.path).toBe('spec.http[0].match[0].authority.regex');
    expect(bad({ uri: { regex: 'x'.repeat(1025) } })[0]!.message).toBe(
      'regex is too long (1025 characters; at most 1024)',
    );
    expect(
      errorsOf(
        'VirtualService',
        vs([{ route: [dest()], rewrite: { uriRegexRewrite: { match: '(', rewrite: '/' } } }]),
      ),
    ).toEqual([error('spec.http[0].rewrite.uriRegexRewrite.match', reason('(', 'missing ): ('))]);
    expect(
      errorsOf(
        'VirtualService',
        vs([{ route: [dest()], corsPolicy: { allowOrigins: [{ regex: '*.example.com' }] } }]),
      ),
    ).toEqual([
      error(
        'spec.http[0].corsPolicy.allowOrigins[0].regex',
        reason('*.example.com', 'no argument for repetition operator: *'),
      ),
    ]);
  });

  it('rejects a string match with more than one kind of match', () => {
    expect(
      errorsOf('VirtualService', vs([{ match: [{ uri: { exact: '/a', prefix: '/b' } }], route: [dest()] }])),
    ).toEqual([
      error(
        'spec.http[0].match[0].uri',
        'only one of exact, prefix or regex may be set, found exact and prefix',
      ),
    ]);
  });

  it('validates header names in matches', () => {
    expect(
      errorsOf('VirtualService', vs([{ match: [{ headers: { 'x y': { exact: 'z' } } }], route: [dest()] }])),
    ).toEqual([
      error(
        'spec.http[0].match[0].headers["x y"]',
        '"x y" is not a valid header name (letters, digits, "-" and "_")',
      ),
    ]);
  });

  it('checks durations: parse, at least 1ms, millisecond precision', () => {
    const t = (timeout: unknown) => errorsOf('VirtualService', vs([route({ timeout })]));
    expect(t('0s')).toEqual([error('spec.http[0].timeout', 'must be at least 1ms, got "0s"')]);
    expect(t('10')).toEqual([
      error(
        'spec.http[0].timeout',
        'invalid duration "10": missing or unknown unit in "10"; use a number with a unit, such as 100ms, 1.5s, 1m or 1h30m',
      ),
    ]);
    expect(t('1.5ms')).toEqual([
      error('spec.http[0].timeout', 'only millisecond precision is supported, got "1.5ms"'),
    ]);
    expect(t('1h30m')).toEqual([]);
    expect(
      errorsOf('VirtualService', vs([route({ retries: { attempts: 2, perTryTimeout: 'soon' } })])),
    ).toEqual([
      error(
        'spec.http[0].retries.perTryTimeout',
        'invalid duration "soon": unexpected "soon"; use a number with a unit, such as 100ms, 1.5s, 1m or 1h30m',
      ),
    ]);
    expect(errorsOf('VirtualService', vs([route({ fault: { delay: { fixedDelay: '-1s' } } })]))).toEqual([
      error('spec.http[0].fault.delay.fixedDelay', 'invalid duration "-1s": durations cannot be negative'),
    ]);
  });

  it('checks retries: attempts not negative, known retryOn conditions or status codes', () => {
    expect(errorsOf('VirtualService', vs([route({ retries: { attempts: -1 } })]))).toEqual([
      error('spec.http[0].retries.attempts', 'must be between 0 and 2147483647, got -1'),
    ]);
    const bad = errorsOf(
      'VirtualService',
      vs([route({ retries: { attempts: 2, retryOn: '5xx, gateway-error,bogus,42,503' } })]),
    );
    expect(bad.map((i) => i.path)).toEqual(['spec.http[0].retries.retryOn', 'spec.http[0].retries.retryOn']);
    expect(bad[0]!.message).toMatch(
      /^"bogus" is not a retry condition; use HTTP status codes or 5xx, gateway-error, reset, /,
    );
    expect(bad[1]!.message).toMatch(/^"42" is not a retry condition/);
    expect(errorsOf('VirtualService', vs([route({ retries: { attempts: 0, retryOn: '5xx' } })]))).toEqual([
      error(
        'spec.http[0].retries.attempts',
        'retries are disabled (attempts: 0), so retryOn would have no effect; remove it or set attempts',
      ),
    ]);
    expect(
      errorsOf(
        'VirtualService',
        vs([route({ retries: { attempts: 0, backoff: '1s', retryIgnorePreviousHosts: false } })]),
      ),
    ).toEqual([
      error(
        'spec.http[0].retries.attempts',
        'retries are disabled (attempts: 0), so retryIgnorePreviousHosts, backoff would have no effect; remove them or set attempts',
      ),
    ]);
    expect(
      errorsOf(
        'VirtualService',
        vs([route({ retries: { attempts: 2, backoff: '50ms', retryIgnorePreviousHosts: false } })]),
      ),
    ).toEqual([]);
  });

  it('checks redirects, direct responses and fault status codes', () => {
    expect(errorsOf('VirtualService', vs([{ redirect: { uri: '/x', redirectCode: 200 } }]))).toEqual([
      error('spec.http[0].redirect.redirectCode', 'must be between 300 and 399, got 200'),
    ]);
    // Envoy sends 301, 302, 303, 307 and 308 only: 304 would leave the route without an action.
    expect(errorsOf('VirtualService', vs([{ redirect: { uri: '/x', redirectCode: 304 } }]))).toEqual([
      error(
        'spec.http[0].redirect.redirectCode',
        '304 is not a redirect the proxy can send; use 301, 302, 303, 307 or 308',
      ),
    ]);
    expect(errorsOf('VirtualService', vs([{ redirect: {} }]))).toEqual([
      error(
        'spec.http[0].redirect',
        'a redirect must set at least one of uri, authority, port, derivePort or scheme',
      ),
    ]);
    expect(errorsOf('VirtualService', vs([{ redirect: { scheme: 'ftp' } }]))).toEqual([
      error('spec.http[0].redirect.scheme', 'must be "http" or "https", got "ftp"'),
    ]);
    expect(errorsOf('VirtualService', vs([{ directResponse: { status: 700 } }]))).toEqual([
      error('spec.http[0].directResponse.status', 'must be between 200 and 599, got 700'),
    ]);
    expect(errorsOf('VirtualService', vs([{ directResponse: {} }]))).toEqual([
      error('spec.http[0].directResponse.status', 'required field "status" is missing'),
    ]);
    expect(errorsOf('VirtualService', vs([route({ fault: { abort: { httpStatus: 100 } } })]))).toEqual([
      error('spec.http[0].fault.abort.httpStatus', 'must be between 200 and 599, got 100'),
    ]);
    expect(errorsOf('VirtualService', vs([route({ fault: { abort: { grpcStatus: 'NOPE' } } })]))).toEqual([
      error(
        'spec.http[0].fault.abort.grpcStatus',
        '"NOPE" is not a gRPC status; use a name such as UNAVAILABLE or NOT_FOUND',
      ),
    ]);
    expect(errorsOf('VirtualService', vs([route({ fault: {} })]))).toEqual([
      error('spec.http[0].fault', 'a fault needs an abort, a delay, or both'),
    ]);
    expect(
      errorsOf('VirtualService', vs([{ redirect: { uri: '/' }, fault: { delay: { fixedDelay: '1s' } } }])),
    ).toEqual([error('spec.http[0].fault', 'a route with a redirect cannot also inject faults')]);
  });

  it('checks percentages: 0-100', () => {
    expect(
      errorsOf(
        'VirtualService',
        vs([route({ fault: { delay: { fixedDelay: '1s', percentage: { value: 120 } } } })]),
      ),
    ).toEqual([error('spec.http[0].fault.delay.percentage.value', 'must be between 0 and 100, got 120')]);
    expect(
      errorsOf('VirtualService', vs([route({ mirror: { host: 'm' }, mirrorPercentage: { value: -5 } })])),
    ).toEqual([error('spec.http[0].mirrorPercentage.value', 'must be between 0 and 100, got -5')]);
  });

  it('checks rewrites and CORS', () => {
    expect(errorsOf('VirtualService', vs([route({ rewrite: {} })]))).toEqual([
      error('spec.http[0].rewrite', 'a rewrite must set uri, uriRegexRewrite or authority'),
    ]);
    expect(
      errorsOf(
        'VirtualService',
        vs([route({ rewrite: { uri: '/', uriRegexRewrite: { match: 'a', rewrite: 'b' } } })]),
      ),
    ).toEqual([error('spec.http[0].rewrite', 'only one of uri or uriRegexRewrite may be set')]);
    expect(errorsOf('VirtualService', vs([route({ corsPolicy: { allowMethods: ['FETCH'] } })]))).toEqual([
      error('spec.http[0].corsPolicy.allowMethods[0]', '"FETCH" is not a supported HTTP method'),
    ]);
    expect(errorsOf('VirtualService', vs([route({ corsPolicy: { maxAge: '1500ms' } })]))).toEqual([
      error('spec.http[0].corsPolicy.maxAge', 'only whole seconds are supported, got "1500ms"'),
    ]);
  });

  it('checks header manipulation', () => {
    expect(
      errorsOf(
        'VirtualService',
        vs([route({ headers: { request: { set: { ':path': '/x' } }, response: { remove: ['host'] } } })]),
      ),
    ).toEqual([
      error('spec.http[0].headers.request.set[":path"]', 'cannot modify pseudo-header ":path"'),
      error('spec.http[0].headers.response.remove[0]', 'cannot remove "host"'),
    ]);
    expect(
      errorsOf(
        'VirtualService',
        vs([route({ rewrite: { authority: 'a' }, headers: { request: { set: { host: 'b' } } } })]),
      ),
    ).toEqual([
      error(
        'spec.http[0].headers.request.set.host',
        'the authority is already rewritten to "a"; set it in one place only',
      ),
    ]);
  });

  it('checks delegation', () => {
    expect(errorsOf('VirtualService', vs([{ delegate: { namespace: 'x' } }]))).toEqual([
      error('spec.http[0].delegate.name', 'the name of the VirtualService to delegate to is required'),
    ]);
    expect(
      errorsOf('VirtualService', vs([{ match: [{ uri: { regex: '.*' } }], delegate: { name: 'd' } }])),
    ).toEqual([
      error(
        'spec.http[0].match[0].uri.regex',
        'regex matches are not supported in delegating or delegate routes',
      ),
    ]);
    expect(errorsOf('VirtualService', { http: [{ delegate: { name: 'again' } }] })).toEqual([
      error('spec.http[0].delegate', 'a delegate VirtualService (one without hosts) cannot delegate again'),
    ]);
  });

  it('warns about rules that can never match', () => {
    expect(
      warningsOf('VirtualService', vs([route(), route({ match: [{ uri: { prefix: '/a' } }] })])),
    ).toEqual([
      {
        severity: 'warning',
        path: 'spec.http[1]',
        message: 'this rule is never used: rule 0 before it has no match and takes all traffic',
      },
    ]);
    const m = [{ uri: { prefix: '/a' } }];
    expect(warningsOf('VirtualService', vs([route({ match: m }), route({ match: m }), route()]))).toEqual([
      {
        severity: 'warning',
        path: 'spec.http[1]',
        message: 'this rule is never used: all its matches repeat earlier rules',
      },
    ]);
  });

  it('only allows JWT claim routing on gateways', () => {
    const claim = [
      { match: [{ headers: { '@request.auth.claims.group': { exact: 'admin' } } }], route: [dest()] },
    ];
    expect(errorsOf('VirtualService', vs(claim))).toEqual([
      error(
        'spec.http[0].match[0].headers["@request.auth.claims.group"]',
        'JWT claim based routing is only supported in VirtualServices bound to gateways',
      ),
    ]);
    expect(errorsOf('VirtualService', vs(claim, { gateways: ['gw'] }))).toEqual([]);
  });
});

describe('TCP and TLS routes', () => {
  it('needs destinations and checks weights the same way', () => {
    expect(errorsOf('VirtualService', { hosts: ['db'], tcp: [{ match: [{ port: 5432 }] }] })).toEqual([
      error('spec.tcp[0].route', 'a TCP route needs at least one destination'),
    ]);
    expect(
      errorsOf('VirtualService', {
        hosts: ['db'],
        tcp: [
          {
            route: [
              { ...dest('a'), weight: 60 },
              { ...dest('b'), weight: 60 },
            ],
          },
        ],
      }),
    ).toEqual([
      error(
        'spec.tcp[0].route',
        'weights of a route with several destinations must add up to 100, got 60 + 60 = 120',
      ),
    ]);
    expect(
      errorsOf('VirtualService', {
        hosts: ['db'],
        tcp: [{ match: [{ destinationSubnets: ['10.0.0.0/33'] }], route: [dest()] }],
      }),
    ).toEqual([
      error(
        'spec.tcp[0].match[0].destinationSubnets[0]',
        '"10.0.0.0/33" has an invalid prefix length (0-32)',
      ),
    ]);
  });

  it('needs SNI hosts within the VirtualService hosts', () => {
    const tls = (sniHosts: unknown) => ({
      hosts: ['*.example.com'],
      tls: [{ match: [{ sniHosts, port: 443 }], route: [dest('api.example.com')] }],
    });
    expect(errorsOf('VirtualService', tls(['api.example.com']))).toEqual([]);
    expect(errorsOf('VirtualService', tls(['api.other.com']))).toEqual([
      error(
        'spec.tls[0].match[0].sniHosts[0]',
        'SNI host "api.other.com" is not within any of the VirtualService hosts (*.example.com)',
      ),
    ]);
    expect(errorsOf('VirtualService', tls([]))).toEqual([
      error('spec.tls[0].match[0].sniHosts', 'at least one SNI host is required'),
    ]);
    expect(errorsOf('VirtualService', { hosts: ['a.example.com'], tls: [{ route: [dest()] }] })).toEqual([
      error('spec.tls[0].match', 'required field "match" is missing'),
    ]);
  });
});
