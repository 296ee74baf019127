import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Backend, requestWithHost, startBackend } from '../src/http.js';
import { jwksServer, type Signer, signer, tokenMinter } from '../src/jwt.js';
import { eventually } from '../src/load.js';
import { type SidecarHandle, TestMesh } from '../src/mesh.js';

/**
 * Security filters at the ingress gateway: the README's JWT example
 * (deploy/samples/security/ingress-jwt.yaml, its JWKS URL pointed at a real
 * JWKS server here, as the README says to point it at your identity
 * provider's) applied to the gateway `mizzen up` runs with Bookinfo's own
 * Gateway and VirtualService, productpage behind a real sidecar.
 */
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const read = (file: string) => fs.readFileSync(path.join(root, file), 'utf8');
/** The issuer the sample names: only a string in the tokens; the keys come from the JWKS URL. */
const ISSUER = 'https://issuer.example.com';
const token = tokenMinter(ISSUER);

describe('RequestAuthentication and AuthorizationPolicy at the ingress gateway', () => {
  const mesh = new TestMesh();
  let productpage: Backend;
  let pageSidecar: SidecarHandle;
  let gateway: SidecarHandle;
  let ingress = '';
  let key: Signer;
  let stranger: Signer;
  let jwks: Awaited<ReturnType<typeof jwksServer>>;

  const get = (p: string, headers: Record<string, string> = {}) =>
    requestWithHost(`${ingress}${p}`, 'bookinfo.example.com', headers);
  const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

  beforeAll(async () => {
    key = await signer('idp-1');
    stranger = await signer('idp-1');
    jwks = await jwksServer([key.jwk]);
    mesh.writeConfig('bookinfo-services.yaml', read('deploy/local/bookinfo-services.yaml'));
    mesh.writeConfig('bookinfo-gateway.yaml', read('deploy/local/bookinfo-gateway.yaml'));
    await mesh.startCitadel();
    await mesh.startPilot(['--registration-grace-ms', '30000']);
    productpage = await startBackend('productpage', 'v1');
    pageSidecar = await mesh.startSidecar({
      workload: 'productpage-v1',
      service: 'productpage',
      labels: { app: 'productpage', version: 'v1' },
      appPort: productpage.port,
    });
    const [httpPort] = await mesh.ports.takeMany(1);
    ingress = `http://127.0.0.1:${httpPort}`;
    gateway = await mesh.startGateway({ portMap: { 8080: httpPort!, 80: httpPort! } });
    await mesh.waitForSync([pageSidecar.id, gateway.id]);
    await eventually(
      'productpage through the ingress',
      async () => (await get('/productpage')).status === 200,
      30_000,
    );
  }, 90_000);

  afterAll(async () => {
    await productpage?.close();
    await jwks?.close();
    await mesh.stop();
  });

  it('applies the README sample: no token → 403 on /productpage, a valid one → 200, an invalid one → 401', async () => {
    const sample = read('deploy/samples/security/ingress-jwt.yaml');
    expect(sample).toContain('jwksUri: https://issuer.example.com/.well-known/jwks.json');
    const applied = await mesh.apply(
      sample.replace('https://issuer.example.com/.well-known/jwks.json', jwks.url),
      'ingress-jwt.yaml',
    );
    expect(applied.status, JSON.stringify(applied.body)).toBe(200);
    await eventually(
      'a token required at the ingress',
      async () => (await get('/productpage')).status === 403,
    );

    const denied = await get('/productpage');
    expect(denied.body).toBe('RBAC: access denied');
    const hits = productpage.hits;

    const valid = await get('/productpage', bearer(await token(key, {})));
    expect(valid.status).toBe(200);
    // Istio's default: the token is checked and removed before the request goes on.
    expect(productpage.lastHeaders?.authorization).toBeUndefined();

    const expired = await get('/productpage', bearer(await token(key, {}, { expiresIn: -120 })));
    expect([expired.status, expired.body]).toEqual([401, 'Jwt is expired']);
    const forged = await get('/productpage', bearer(await token(stranger, {})));
    expect([forged.status, forged.body]).toEqual([401, 'Jwt verification fails']);
    const otherAudience = await get('/productpage', bearer(await token(key, {}, { audience: 'billing' })));
    expect([otherAudience.status, otherAudience.body]).toEqual([403, 'Audiences in Jwt are not allowed']);
    // Only the valid request reached the app.
    expect(productpage.hits).toBe(hits + 1);

    // The policy names /productpage only; elsewhere a missing token passes and an invalid one still does not.
    expect((await get('/api/v1/products')).status).toBe(200);
    expect((await get('/api/v1/products', bearer(await token(stranger, {})))).status).toBe(401);

    // The gateway's own counters say what happened.
    const stats = await (await fetch(`http://127.0.0.1:${gateway.statsPort}/stats/prometheus`)).text();
    const counter = (name: string) =>
      stats
        .split('\n')
        .filter((l) => l.startsWith(`${name}{`))
        .reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
    expect(counter('envoy_http_rbac_denied')).toBeGreaterThanOrEqual(2);
    expect(counter('envoy_http_jwt_authn_denied')).toBeGreaterThanOrEqual(4);

    const removed = await mesh.remove(sample);
    expect(removed.status).toBe(200);
    await eventually('open again', async () => (await get('/productpage')).status === 200);
  });
});
