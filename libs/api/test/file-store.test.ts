import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type ConfigResource, FileStore, parseConfig } from '../src/index.js';
import { tempDir } from './helpers.js';

function vs(name: string, subset = 'v1', namespace = 'default'): ConfigResource {
  const text = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ${name}, namespace: ${namespace} }
spec:
  hosts: [${name}]
  http: [{ route: [{ destination: { host: ${name}, subset: ${subset} } }] }]
`;
  const { resources, issues } = parseConfig(text, 'test');
  expect(issues).toEqual([]);
  return resources[0]!;
}

const dirs: string[] = [];
function storeFile(): string {
  const dir = tempDir();
  dirs.push(dir);
  return path.join(dir, 'nested', 'state', 'store.json');
}

afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('FileStore', () => {
  it('is named store:<file> unless told otherwise', () => {
    expect(new FileStore('/tmp/x.json').name).toBe('store:/tmp/x.json');
    expect(new FileStore('/tmp/x.json', { name: 'registrations' }).name).toBe('registrations');
  });

  it('applies: created, then unchanged, then configured, with timestamps and versions', () => {
    const store = new FileStore(storeFile());
    let changes = 0;
    store.onChange(() => changes++);

    expect(store.apply([vs('reviews'), vs('ratings')])).toEqual([
      { kind: 'VirtualService', namespace: 'default', name: 'reviews', action: 'created' },
      { kind: 'VirtualService', namespace: 'default', name: 'ratings', action: 'created' },
    ]);
    expect(changes).toBe(1);
    const created = store.get('VirtualService/default/reviews')!;
    expect(created.metadata.creationTimestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(created.metadata.generation).toBe(1);
    expect(created.metadata.resourceVersion).toBe('1');

    expect(store.apply([vs('reviews')])).toEqual([
      { kind: 'VirtualService', namespace: 'default', name: 'reviews', action: 'unchanged' },
    ]);
    expect(changes).toBe(1);

    expect(store.apply([vs('reviews', 'v2')])).toEqual([
      { kind: 'VirtualService', namespace: 'default', name: 'reviews', action: 'configured' },
    ]);
    expect(changes).toBe(2);
    const updated = store.get('VirtualService/default/reviews')!;
    expect(updated.metadata.creationTimestamp).toBe(created.metadata.creationTimestamp);
    expect(updated.metadata.generation).toBe(2);
    expect(Number(updated.metadata.resourceVersion)).toBeGreaterThan(2);
    expect(
      (updated.spec as { http: { route: { destination: { subset: string } }[] }[] }).http[0]!.route[0]!
        .destination.subset,
    ).toBe('v2');

    // A label-only change is a change, but not of the spec: generation stays.
    const labelled = vs('reviews', 'v2');
    labelled.metadata.labels = { team: 'books' };
    expect(store.apply([labelled])[0]!.action).toBe('configured');
    expect(store.get('VirtualService/default/reviews')!.metadata.generation).toBe(2);
  });

  it('rejects a batch with an invalid resource as a whole', () => {
    const file = storeFile();
    const store = new FileStore(file);
    store.apply([vs('reviews')]);
    const before = fs.readFileSync(file, 'utf8');
    let changes = 0;
    store.onChange(() => changes++);
    const bad = {
      ...vs('ratings'),
      spec: { hosts: ['ratings'], http: [{ route: [{ destination: { host: 'ratings' }, weight: 120 }] }] },
    };
    expect(() => store.apply([vs('details'), bad as ConfigResource])).toThrow(
      'nothing applied: resource 2 of the batch is invalid: store:' +
        `${file}: document 2 (VirtualService default/ratings): spec.http[0].route[0].weight: must be between 0 and 100, got 120`,
    );
    expect(store.list().map((r) => r.metadata.name)).toEqual(['reviews']);
    expect(fs.readFileSync(file, 'utf8')).toBe(before);
    expect(changes).toBe(0);
  });

  it('deletes by key, reporting what was not there, in one change', () => {
    const store = new FileStore(storeFile());
    store.apply([vs('reviews'), vs('ratings'), vs('details')]);
    let changes = 0;
    store.onChange(() => changes++);
    expect(
      store.delete([
        'VirtualService/default/reviews',
        'VirtualService/default/ratings',
        'Gateway/default/nope',
      ]),
    ).toEqual([
      { kind: 'VirtualService', namespace: 'default', name: 'reviews', action: 'deleted' },
      { kind: 'VirtualService', namespace: 'default', name: 'ratings', action: 'deleted' },
      { kind: 'Gateway', namespace: 'default', name: 'nope', action: 'not found' },
    ]);
    expect(changes).toBe(1);
    expect(store.list().map((r) => r.metadata.name)).toEqual(['details']);
    expect(store.delete(['VirtualService/default/reviews'])).toEqual([
      { kind: 'VirtualService', namespace: 'default', name: 'reviews', action: 'not found' },
    ]);
    expect(changes).toBe(1);
  });

  it('persists across instances, and works before start()', async () => {
    const file = storeFile();
    const first = new FileStore(file);
    first.apply([vs('reviews', 'v3', 'shop')]);
    const stamp = first.get('VirtualService/shop/reviews')!.metadata.creationTimestamp;

    const second = new FileStore(file);
    expect(second.get('VirtualService/shop/reviews')?.metadata.creationTimestamp).toBe(stamp);
    await second.start();
    expect(second.list()).toEqual(first.list());
    // resourceVersions keep increasing after a restart.
    second.apply([vs('reviews', 'v1', 'shop')]);
    expect(Number(second.get('VirtualService/shop/reviews')!.metadata.resourceVersion)).toBeGreaterThan(
      Number(first.get('VirtualService/shop/reviews')!.metadata.resourceVersion),
    );
    await second.stop();
    expect(fs.readdirSync(path.dirname(file))).toEqual(['store.json']);
  });

  it('treats a missing file as empty', async () => {
    const store = new FileStore(storeFile());
    await store.start();
    expect(store.list()).toEqual([]);
    expect(store.issues()).toEqual([]);
  });

  it('refuses a corrupt file, naming it and the reason', async () => {
    const file = storeFile();
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, '{"resources": [ {"kind": "VirtualService"');
    await expect(new FileStore(file).start()).rejects.toThrow(
      new RegExp(`^config store ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} is corrupt: not valid JSON`),
    );
    fs.writeFileSync(file, JSON.stringify({ resources: [{ kind: 'Nope', metadata: {} }] }));
    expect(() => new FileStore(file).list()).toThrow(
      `config store ${file} is corrupt: resources[0] is not a resource (it needs kind, metadata.name, metadata.namespace and spec)`,
    );
  });

  it('hands out resources that cannot be modified', () => {
    const store = new FileStore(storeFile());
    store.apply([vs('reviews')]);
    const r = store.get('VirtualService/default/reviews')!;
    expect(() => {
      r.metadata.name = 'other';
    }).toThrow(TypeError);
  });

  it('unsubscribes listeners', () => {
    const store = new FileStore(storeFile());
    let changes = 0;
    const off = store.onChange(() => changes++);
    store.apply([vs('a')]);
    off();
    store.apply([vs('b')]);
    expect(changes).toBe(1);
  });
});
