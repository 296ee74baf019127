import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileStore } from '@mizzen/api';
import { createLogger } from '@mizzen/runtime';
import type { XdsNode } from '@mizzen/xds';
import { afterEach, describe, expect, it } from 'vitest';
import { proxyFromNode } from '../src/model/proxy.js';
import { AutoRegistration } from '../src/registry/auto-registration.js';

/** A sidecar of the `reviews-v1` workload in pod `pod`, as the agent announces itself. */
function reviewsPod(pod: string, ip: string): XdsNode {
  return {
    id: `sidecar~${ip}~${pod}.default~default.svc.cluster.local`,
    cluster: 'reviews.default',
    metadata: {
      NAMESPACE: 'default',
      LABELS: { app: 'reviews', version: 'v1' },
      INSTANCE_IPS: ip,
      WORKLOAD_NAME: 'reviews-v1',
      SERVICE_ACCOUNT: 'bookinfo-reviews',
      MIZZEN_SERVICE: 'reviews',
      MIZZEN_PORTS: [{ name: 'http', port: 9080, targetPort: 19080, listenPort: 15006 }],
    },
  } as XdsNode;
}

describe('WorkloadEntry auto-registration (local mode)', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  async function registration() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-autoreg-'));
    dirs.push(dir);
    const store = new FileStore(path.join(dir, 'store.yaml'));
    await store.start();
    return { store, auto: new AutoRegistration(store, createLogger('test', { level: 'silent' }), 20) };
  }

  const entries = (store: FileStore) =>
    store
      .list()
      .filter((r) => r.kind === 'WorkloadEntry')
      .map((r) => ({ name: r.metadata.name, address: (r.spec as { address: string }).address }))
      .sort((a, b) => a.name.localeCompare(b.name));

  it('gives each pod of a workload its own entry, so replicas are all endpoints and one leaving keeps the other', async () => {
    const { store, auto } = await registration();
    const a = proxyFromNode(reviewsPod('reviews-v1-5b9f-abcde', '127.0.0.11'));
    const b = proxyFromNode(reviewsPod('reviews-v1-5b9f-fghij', '127.0.0.12'));
    expect(a.workloadName).toBe(b.workloadName);
    auto.connected(a);
    auto.connected(b);
    expect(entries(store)).toEqual([
      { name: 'reviews-v1-5b9f-abcde', address: '127.0.0.11' },
      { name: 'reviews-v1-5b9f-fghij', address: '127.0.0.12' },
    ]);
    auto.disconnected(a);
    await new Promise((r) => setTimeout(r, 100));
    expect(entries(store)).toEqual([{ name: 'reviews-v1-5b9f-fghij', address: '127.0.0.12' }]);
    auto.stop();
  });
});
