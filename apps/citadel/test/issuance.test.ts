import fs from 'node:fs';
import path from 'node:path';
import { certificateInfo, verifyChain } from '@mizzen/pki';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, enroll, metricValue, mutualTls, startCitadel } from './helpers.js';

afterEach(cleanup);

const REVIEWS = 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews';
const PRODUCTPAGE = 'spiffe://cluster.local/ns/default/sa/bookinfo-productpage';

describe('citadel issues workload certificates over gRPC', () => {
  it('signs a CSR for the proven identity; two workloads then do mutual TLS with node:tls', async () => {
    const h = await startCitadel();
    const reviews = await enroll(h, await h.token('default', 'bookinfo-reviews'), { uris: [REVIEWS] });
    const productpage = await enroll(h, await h.token('default', 'bookinfo-productpage'), {
      uris: [PRODUCTPAGE],
    });

    expect(reviews.chain).toHaveLength(2);
    const root = reviews.chain[1]!;
    expect(root).toBe(fs.readFileSync(path.join(h.caDir, 'root-cert.pem'), 'utf8'));
    const leaf = certificateInfo(reviews.chain[0]!);
    expect(leaf.uris).toEqual([REVIEWS]);
    expect(leaf.isCa).toBe(false);
    expect(leaf.notAfter.getTime() - Date.now()).toBeGreaterThan(24 * 3600_000 - 60_000);
    expect(leaf.notAfter.getTime() - Date.now()).toBeLessThanOrEqual(24 * 3600_000);
    expect((await verifyChain({ leaf: reviews.chain[0]!, roots: root })).ok).toBe(true);

    const result = await mutualTls(reviews, productpage, root);
    expect(result.clientAuthorized).toBe(true);
    expect(result.clientSawServer).toBe(`URI:${REVIEWS}`);
    expect(result.serverSawClient).toBe(`URI:${PRODUCTPAGE}`);

    const issued = h.logs.all('issued a workload certificate');
    expect(issued.map((l) => l.identity)).toEqual([REVIEWS, PRODUCTPAGE]);
    expect(issued[0]).toMatchObject({
      clusterId: 'Kubernetes',
      authenticator: 'local-token',
      keyType: 'ECDSA P-256',
    });
  });

  it('issues the proven identity, not the one the CSR asks for, and logs a warning', async () => {
    const h = await startCitadel();
    const asked = 'spiffe://cluster.local/ns/istio-system/sa/istiod';
    const w = await enroll(h, await h.token('default', 'bookinfo-ratings'), { uris: [asked] });
    expect(certificateInfo(w.chain[0]!).uris).toEqual([
      'spiffe://cluster.local/ns/default/sa/bookinfo-ratings',
    ]);
    const warning = h.logs.find(
      'the CSR asked for identities the caller did not prove; issuing the proven identity only',
    );
    expect(warning).toMatchObject({
      level: 'warn',
      requested: [asked],
      issued: 'spiffe://cluster.local/ns/default/sa/bookinfo-ratings',
    });
  });

  it('refuses a request for another identity (ImpersonatedIdentity) with PERMISSION_DENIED and issues nothing', async () => {
    const h = await startCitadel();
    const token = await h.token('default', 'bookinfo-ratings');
    await expect(enroll(h, token, { impersonate: REVIEWS })).rejects.toMatchObject({
      code: 7,
      details: expect.stringContaining(`may not request a certificate for ${REVIEWS}`),
    });
    const own = await enroll(h, token, {
      impersonate: 'spiffe://cluster.local/ns/default/sa/bookinfo-ratings',
    });
    expect(certificateInfo(own.chain[0]!).uris).toEqual([
      'spiffe://cluster.local/ns/default/sa/bookinfo-ratings',
    ]);
  });

  it('honours a requested TTL and uses the 24h default for 0', async () => {
    const h = await startCitadel();
    const token = await h.token('shop', 'cart');
    const short = await enroll(h, token, { ttlSeconds: 120 });
    const info = certificateInfo(short.chain[0]!);
    expect(info.notAfter.getTime() - info.notBefore.getTime()).toBe(180_000);
    const dflt = await enroll(h, token, { ttlSeconds: 0 });
    const d = certificateInfo(dflt.chain[0]!);
    expect(d.notAfter.getTime() - d.notBefore.getTime()).toBe((24 * 3600 + 60) * 1000);
  });

  it('signs RSA workload keys on request and uses the configured trust domain', async () => {
    const h = await startCitadel({ trustDomain: 'example.org' });
    const w = await enroll(h, await h.token('default', 'legacy'), { keyType: 'RSA-2048' });
    const info = certificateInfo(w.chain[0]!);
    expect(info.keyType).toBe('RSA 2048');
    expect(info.uris).toEqual(['spiffe://example.org/ns/default/sa/legacy']);
    expect(certificateInfo(w.chain[1]!).subject).toBe('O=example.org, CN=Mizzen Root CA');
  });

  it('serves /ready, /root-cert.pem (with ETag) and Istio-named metrics that move', async () => {
    const h = await startCitadel();
    expect((await h.http('/ready')).status).toBe(200);

    const rootRes = await h.http('/root-cert.pem');
    expect(rootRes.status).toBe(200);
    expect(rootRes.headers.get('content-type')).toMatch(/application\/x-pem-file/);
    const rootPem = await rootRes.text();
    expect(rootPem).toBe(fs.readFileSync(path.join(h.caDir, 'root-cert.pem'), 'utf8'));
    const etag = rootRes.headers.get('etag')!;
    expect((await h.http('/root-cert.pem', { 'if-none-match': etag })).status).toBe(304);

    const before = await (await h.http('/metrics')).text();
    expect(metricValue(before, 'citadel_server_csr_count')).toBe(0);
    const rootInfo = certificateInfo(rootPem);
    expect(metricValue(before, 'citadel_server_root_cert_expiry_timestamp')).toBe(
      Math.floor(rootInfo.notAfter.getTime() / 1000),
    );
    expect(metricValue(before, 'citadel_server_cert_chain_expiry_timestamp')).toBe(
      Math.floor(rootInfo.notAfter.getTime() / 1000),
    );

    const w = await enroll(h, await h.token('default', 'a'));
    expect(w.chain[1]).toBe(rootPem);
    await enroll(h, 'not-a-token').catch(() => undefined);
    await enroll(h, await h.token('default', 'a'), { ttlSeconds: 365 * 86_400 }).catch(() => undefined);

    const after = await (await h.http('/metrics')).text();
    expect(metricValue(after, 'citadel_server_csr_count')).toBe(3);
    expect(metricValue(after, 'citadel_server_success_cert_issuance_count')).toBe(1);
    expect(metricValue(after, 'citadel_server_csr_sign_err_count', 'reason="UNAUTHENTICATED"')).toBe(1);
    expect(metricValue(after, 'citadel_server_csr_sign_err_count', 'reason="TTL_ERROR"')).toBe(1);
    expect(metricValue(after, 'citadel_server_authentication_failure_count')).toBe(1);
  });

  it('never writes key material, tokens or CSRs to its logs', async () => {
    const h = await startCitadel();
    const token = await h.token('default', 'a');
    await enroll(h, token, { uris: ['spiffe://cluster.local/ns/other/sa/b'] });
    await h.client.createCertificate({ csrPem: 'garbage', token }).catch(() => undefined);
    const text = h.logs.text();
    expect(text).not.toMatch(/PRIVATE KEY|CERTIFICATE REQUEST|BEGIN CERTIFICATE/);
    expect(text).not.toContain(token);
    expect(text).not.toContain(h.secret);
  });
});
