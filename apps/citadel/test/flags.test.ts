import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { defaultCaDir, parseCitadelFlags, parseDuration } from '../src/flags.js';

describe('citadel flags', () => {
  it('defaults to Istio’s ports, trust domain, TTLs and local mode under MIZZEN_HOME', () => {
    const config = parseCitadelFlags([], { MIZZEN_HOME: '/tmp/mz' });
    expect(config).toEqual({
      host: '0.0.0.0',
      grpcPort: 8060,
      httpPort: 15016,
      caDir: '/tmp/mz/citadel',
      trustDomain: 'cluster.local',
      auth: { mode: 'local', tokenKeyFile: '/tmp/mz/citadel/workload-token.key' },
      defaultTtlSeconds: 86_400,
      maxTtlSeconds: 90 * 86_400,
      selfSignedRootTtlSeconds: 10 * 365 * 86_400,
      caKeyType: 'EC-P256',
      // TLS on the gRPC port by default, for citadel's Service names and loopback.
      grpcTls: {
        names: [
          'istio-citadel',
          'istio-citadel.istio-system',
          'istio-citadel.istio-system.svc',
          'istio-citadel.istio-system.svc.cluster.local',
          'localhost',
          '127.0.0.1',
          '::1',
        ],
        ttlSeconds: 86_400,
      },
    });
    expect(defaultCaDir({})).toMatch(/\.mizzen[/\\]citadel$/);
  });

  it('reads every flag', () => {
    const config = parseCitadelFlags([
      '--host=127.0.0.1',
      '--grpc-port=18060',
      '--http-port=0',
      '--ca-dir=rel/dir',
      '--trust-domain=example.org',
      '--kube-api=https://kubernetes.default.svc/',
      '--kube-token-file=/t',
      '--kube-ca-file=/ca.crt',
      '--default-workload-cert-ttl=1h30m',
      '--max-workload-cert-ttl=30d',
      '--self-signed-root-ttl=8760h',
      '--ca-key-type=rsa-3072',
      '--log-level=debug',
      '--grpc-tls-names=ca.example.org,10.0.0.8',
      '--grpc-cert-ttl=12h',
    ]);
    expect(config).toEqual({
      host: '127.0.0.1',
      grpcPort: 18060,
      httpPort: 0,
      caDir: path.resolve('rel/dir'),
      trustDomain: 'example.org',
      auth: {
        mode: 'kubernetes',
        apiUrl: 'https://kubernetes.default.svc',
        tokenFile: '/t',
        caFile: '/ca.crt',
      },
      defaultTtlSeconds: 5400,
      maxTtlSeconds: 30 * 86_400,
      selfSignedRootTtlSeconds: 8760 * 3600,
      caKeyType: 'RSA-3072',
      logLevel: 'debug',
      grpcTls: { names: ['ca.example.org', '10.0.0.8'], ttlSeconds: 12 * 3600 },
    });
    expect(parseCitadelFlags(['--grpc-plaintext'])).not.toHaveProperty('grpcTls');
    expect(parseCitadelFlags(['--kube-api', 'http://127.0.0.1:6443'])).toMatchObject({
      auth: { mode: 'kubernetes', tokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token' },
    });
    expect(parseCitadelFlags(['--help'])).toBe('help');
  });

  it.each([
    [['--grpc-port', 'x'], /--grpc-port must be a port number \(0-65535\), got "x"/],
    [['--http-port', '70000'], /--http-port must be a port number/],
    [['--trust-domain', 'Bad Domain'], /--trust-domain: trust domain "Bad Domain" must be/],
    [['--token-key', 'k', '--kube-api', 'https://k'], /use either --token-key .* or --kube-api .*, not both/],
    [['--kube-token-file', '/t'], /--kube-token-file needs --kube-api/],
    [['--kube-api', 'ftp://k'], /--kube-api must be an http\(s\) URL/],
    [['--kube-api', 'not a url'], /--kube-api must be an http\(s\) URL such as/],
    [['--max-workload-cert-ttl', '90 days'], /--max-workload-cert-ttl must be a duration such as 24h/],
    [
      ['--default-workload-cert-ttl', '100d'],
      /--default-workload-cert-ttl must not exceed --max-workload-cert-ttl/,
    ],
    [['--ca-key-type', 'dsa'], /--ca-key-type: unknown key type "dsa"/],
    [['--log-level', 'loud'], /--log-level must be one of/],
    [['--grpc-plaintext', '--grpc-tls-names', 'a'], /--grpc-tls-names makes no sense with --grpc-plaintext/],
    [['--grpc-plaintext', '--grpc-cert-ttl', '1h'], /--grpc-cert-ttl makes no sense with --grpc-plaintext/],
    [
      ['--grpc-tls-names', 'ok.example,Not A Name'],
      /--grpc-tls-names: "Not A Name" is neither a DNS name nor/,
    ],
    [['--grpc-tls-names', 'a,,b'], /--grpc-tls-names must be a comma-separated list/],
    [['--grpc-cert-ttl', 'soon'], /--grpc-cert-ttl must be a duration/],
    [['--bogus'], /Unknown option '--bogus'/],
    [['positional'], /Unexpected argument 'positional'/],
  ])('%j is refused: %s', (argv, message) => {
    expect(() => parseCitadelFlags(argv)).toThrow(message);
  });

  it.each([
    ['24h', 86_400],
    ['2160h0m0s', 7_776_000],
    ['90d', 7_776_000],
    ['1h30m', 5400],
    ['45s', 45],
    ['1500ms', 1],
  ])('parseDuration(%s) = %d s', (text, seconds) => {
    expect(parseDuration(text, '--x')).toBe(seconds);
  });

  it.each([[''], ['10'], ['h'], ['1y'], ['500ms'], ['1h 30m']])('parseDuration(%j) is refused', (text) => {
    expect(() => parseDuration(text, '--x')).toThrow(/--x must be/);
  });
});
