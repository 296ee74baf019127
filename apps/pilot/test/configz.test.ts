import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '@mizzen/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Pilot } from '../src/pilot.js';

/**
 * `/debug/configz` on a real pilot: the config in force from a watched
 * directory and from `mizzen apply`'s store, each resource with its source,
 * and the files it refused with the reason — what `mizzen get` and the
 * dashboard's config view read.
 */
interface Configz {
  resources: { kind: string; metadata: { name: string; namespace?: string }; source: string }[];
  issues: { severity: string; source: string; message: string }[];
}

const RATINGS = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ratings, namespace: default }
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, ports: { http: 19080 } }]
`;

const BAD = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: broken, namespace: default }
spec:
  hosts: [ratings]
  http:
    - timeout: soon
      route: [{ destination: { host: ratings } }]
`;

describe('/debug/configz', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-configz-'));
  const configDir = path.join(dir, 'config');
  let pilot: Pilot;
  let base = '';

  const configz = async () => (await (await fetch(`${base}/debug/configz`)).json()) as Configz;

  beforeAll(async () => {
    fs.mkdirSync(configDir);
    fs.writeFileSync(path.join(configDir, 'ratings.yaml'), RATINGS);
    fs.writeFileSync(path.join(configDir, 'broken.yaml'), BAD);
    pilot = new Pilot({
      logger: createLogger('configz-test', { level: 'silent' }),
      host: '127.0.0.1',
      xdsPort: 0,
      httpPort: 0,
      configDirs: [configDir],
      storeFile: path.join(dir, 'store.json'),
      registrationsFile: path.join(dir, 'registrations.json'),
      debounceMs: 10,
    });
    const ports = await pilot.start();
    base = `http://127.0.0.1:${ports.httpPort}`;
  });

  afterAll(async () => {
    await pilot?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('lists the config in force with its source, and the refused file with its reason', async () => {
    const res = await fetch(`${base}/apis/config/apply`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        yaml: 'apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: { name: ratings }\nspec: { host: ratings }\n',
        source: 'ratings-dr.yaml',
      }),
    });
    expect(res.status, await res.text()).toBe(200);
    const z = await configz();
    const byName = Object.fromEntries(z.resources.map((r) => [`${r.kind}/${r.metadata.name}`, r.source]));
    expect(byName).toEqual({
      'ServiceEntry/ratings': expect.stringMatching(/^dir:.*config$/),
      'DestinationRule/ratings': expect.stringMatching(/^store:.*store\.json$/),
    });
    expect(z.issues).toEqual([
      expect.objectContaining({
        severity: 'error',
        message: expect.stringMatching(
          /broken\.yaml: document 1 \(VirtualService default\/broken\): spec\.http\[0\]\.timeout: invalid duration "soon"/,
        ),
      }),
    ]);
  });
});
