import { describe, expect, it } from 'vitest';
import {
  formatSpiffeId,
  isSpiffeId,
  PkiError,
  parsePrincipal,
  parseServiceAccountUsername,
  parseSpiffeId,
  serviceAccountUsername,
  toPrincipal,
  validateTrustDomain,
} from '../src/index.js';

describe('SPIFFE ids', () => {
  it.each([
    ['spiffe://cluster.local/ns/default/sa/bookinfo-reviews', 'cluster.local', 'default', 'bookinfo-reviews'],
    [
      'spiffe://example.org/ns/istio-system/sa/istio-ingressgateway',
      'example.org',
      'istio-system',
      'istio-ingressgateway',
    ],
    ['spiffe://td_1/ns/a/sa/b.c', 'td_1', 'a', 'b.c'],
  ])('%s parses and formats back', (uri, trustDomain, namespace, serviceAccount) => {
    const id = parseSpiffeId(uri);
    expect(id).toEqual({ trustDomain, namespace, serviceAccount });
    expect(formatSpiffeId(id)).toBe(uri);
    expect(isSpiffeId(uri)).toBe(true);
    expect(toPrincipal(uri)).toBe(uri.slice('spiffe://'.length));
    expect(parsePrincipal(toPrincipal(id))).toEqual(id);
  });

  it.each([
    ['', /not a SPIFFE id/],
    ['https://cluster.local/ns/a/sa/b', /must start with spiffe:\/\//],
    ['spiffe://cluster.local/ns/a', /is not of the form/],
    ['spiffe://cluster.local/ns/a/sa/b/extra', /is not of the form/],
    ['spiffe://cluster.local/namespace/a/sa/b', /is not of the form/],
    ['spiffe://Cluster.Local/ns/a/sa/b', /trust domain "Cluster.Local" must be/],
    ['spiffe:///ns/a/sa/b', /trust domain "" must be/],
    ['spiffe://cluster.local/ns/Default/sa/b', /namespace "Default" must be a DNS-1123 label/],
    ['spiffe://cluster.local/ns/a/sa/', /service account "" must be a DNS-1123 subdomain/],
    ['spiffe://cluster.local/ns/a/sa/b_c', /service account "b_c"/],
    [`spiffe://cluster.local/ns/${'a'.repeat(64)}/sa/b`, /namespace .* must be a DNS-1123 label/],
  ])('%j is refused: %s', (uri, message) => {
    expect(() => parseSpiffeId(uri)).toThrow(PkiError);
    expect(() => parseSpiffeId(uri)).toThrow(message);
    expect(isSpiffeId(uri)).toBe(false);
  });

  it('formatSpiffeId validates every part', () => {
    expect(() =>
      formatSpiffeId({ trustDomain: 'cluster.local', namespace: 'a/b', serviceAccount: 'c' }),
    ).toThrow(/namespace "a\/b"/);
    expect(() => validateTrustDomain('a'.repeat(256))).toThrow(/1-255/);
  });

  it.each([
    ['spiffe://cluster.local/ns/a/sa/b', /must not carry the spiffe:\/\/ scheme/],
    ['cluster.local/ns/a', /is not of the form <trust-domain>/],
    ['cluster.local/ns/a/sa/B', /service account "B"/],
  ])('principal %j is refused', (principal, message) => {
    expect(() => parsePrincipal(principal)).toThrow(message);
  });
});

describe('Kubernetes service-account user names', () => {
  it('round-trips system:serviceaccount:<ns>:<sa>', () => {
    expect(serviceAccountUsername('default', 'bookinfo-ratings')).toBe(
      'system:serviceaccount:default:bookinfo-ratings',
    );
    expect(parseServiceAccountUsername('system:serviceaccount:default:bookinfo-ratings')).toEqual({
      namespace: 'default',
      serviceAccount: 'bookinfo-ratings',
    });
  });

  it.each([
    ['admin', /is not a service account/],
    ['system:node:worker-1', /is not a service account/],
    ['system:serviceaccount:default', /is not of the form/],
    ['system:serviceaccount:default:a:b', /is not of the form/],
    ['system:serviceaccount:De fault:a', /namespace "De fault"/],
  ])('%j is refused', (username, message) => {
    expect(() => parseServiceAccountUsername(username)).toThrow(message);
  });

  it('refuses to build a user name from invalid parts', () => {
    expect(() => serviceAccountUsername('', 'a')).toThrow(/namespace ""/);
    expect(() => serviceAccountUsername('a', 'B')).toThrow(/service account "B"/);
  });
});
