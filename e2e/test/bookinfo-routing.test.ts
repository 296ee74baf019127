import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../src/load.js';
import { type SidecarHandle, TestMesh } from '../src/mesh.js';
import { appEntry } from '../src/processes.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Istio's virtual-service-reviews-test-v2.yaml: jason gets reviews v2, everyone else v1. */
const JASON_TO_V2 = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: default
spec:
  hosts:
    - reviews
  http:
    - match:
        - headers:
            end-user:
              exact: jason
      route:
        - destination:
            host: reviews
            subset: v2
    - route:
        - destination:
            host: reviews
            subset: v1
`;

interface Page {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** A browser-like request to productpage through its sidecar's inbound port. */
function visit(port: number, p: string, opts: { cookie?: string; form?: string } = {}): Promise<Page> {
  return new Promise((resolve, reject) => {
    const body = opts.form ?? '';
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        path: p,
        method: opts.form !== undefined ? 'POST' : 'GET',
        agent: false,
        timeout: 15_000,
        headers: {
          host: 'productpage:9080',
          ...(opts.cookie ? { cookie: opts.cookie } : {}),
          ...(opts.form !== undefined
            ? {
                'content-type': 'application/x-www-form-urlencoded',
                'content-length': Buffer.byteLength(body),
              }
            : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${p} timed out`)));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Istio's request-routing task with the real Bookinfo apps, each beside its
 * own sidecar, configured by pilot from the local mesh's Bookinfo YAML:
 * productpage passes the signed-in user as `end-user` to reviews, and the
 * VirtualService sends jason to reviews v2 (black stars from ratings) and
 * everyone else to v1 (no stars).
 */
describe("Istio's request routing by end-user through the Bookinfo apps", () => {
  const mesh = new TestMesh();
  let productpage: SidecarHandle;

  /** A Bookinfo app and its sidecar: the app calls out through the sidecar as HTTP_PROXY. */
  const workload = async (app: string, version: string) => {
    const appPort = await mesh.ports.take();
    const sidecar = await mesh.startSidecar({
      workload: `${app}-${version}`,
      service: app,
      labels: { app, version },
      appPort,
    });
    mesh.procs.start(`${app}-${version}`, appEntry(`@mizzen/bookinfo-${app}`), [], {
      PORT: String(appPort),
      HOST: '127.0.0.1',
      SERVICE_VERSION: version,
      POD_NAME: `${app}-${version}`,
      HTTP_PROXY: `http://127.0.0.1:${sidecar.outboundPort}`,
      http_proxy: `http://127.0.0.1:${sidecar.outboundPort}`,
      NO_PROXY: '',
      no_proxy: '',
    });
    return sidecar;
  };

  beforeAll(async () => {
    for (const file of ['bookinfo-services.yaml', 'destination-rule-all.yaml'])
      mesh.writeConfig(file, fs.readFileSync(path.join(REPO, 'deploy', 'local', file), 'utf8'));
    await mesh.startPilot(['--registration-grace-ms', '30000']);
    const sidecars = [
      await workload('ratings', 'v1'),
      await workload('reviews', 'v1'),
      await workload('reviews', 'v2'),
    ];
    productpage = await workload('productpage', 'v1');
    await mesh.waitForSync(
      [...sidecars, productpage].map((s) => s.id),
      120_000,
    );
  });

  afterAll(async () => {
    await mesh.stop();
  });

  it('shows jason black stars from reviews v2 once signed in, and everyone else reviews v1', async () => {
    expect((await mesh.apply(JASON_TO_V2)).status).toBe(200);
    const login = await visit(productpage.inboundPort, '/login', { form: 'username=jason' });
    expect(login.status).toBe(302);
    const cookie = String(login.headers['set-cookie']?.[0] ?? '').split(';')[0]!;
    expect(cookie).toBe('user=jason');
    const page = (c?: string) => visit(productpage.inboundPort, '/productpage', { cookie: c });
    await eventually(
      'jason routed to reviews v2',
      async () => {
        const html = (await page(cookie)).body;
        return html.includes('stars-black') || html.slice(0, 200);
      },
      120_000,
    );
    for (let i = 0; i < 10; i++) {
      const html = (await page(cookie)).body;
      expect(html).toContain('jason');
      expect(html).toContain('stars-black');
      expect(html).not.toContain('stars-red');
    }
    // Signed out (and signed in as someone else): reviews v1, which shows no stars.
    for (const c of [undefined, 'user=alice']) {
      for (let i = 0; i < 10; i++) {
        const r = await page(c);
        expect(r.status).toBe(200);
        expect(r.body).toContain('Reviewer1');
        expect(r.body).not.toContain('stars-');
      }
    }
  });
});
