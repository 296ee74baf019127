import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { certificateInfo, createRootCa, verifyChain } from '@mizzen/pki';
import { createLogger } from '@mizzen/runtime';
import { afterEach, describe, expect, it } from 'vitest';
import { CaStore, CaStoreError } from '../src/ca-store.js';
import { cleanup, enroll, LogCapture, plugInSet, startCitadel, tempDir, writePlugIn } from './helpers.js';

afterEach(cleanup);

describe('self-generated root', () => {
  it('is created on first start in the plug-in layout (ca-key.pem 0600) and kept across a restart', async () => {
    const dir = tempDir();
    const first = await startCitadel({ caDir: dir });
    expect(first.citadel.store.origin).toBe('generated');
    const files = fs.readdirSync(dir).sort();
    expect(files).toEqual([
      'ca-cert.pem',
      'ca-key.pem',
      'cert-chain.pem',
      'root-cert.pem',
      'workload-token.key',
    ]);
    expect(fs.statSync(path.join(dir, 'ca-key.pem')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(dir, 'workload-token.key')).mode & 0o777).toBe(0o600);
    expect(fs.statSync(dir).mode & 0o777).toBe(0o700);
    const root = fs.readFileSync(path.join(dir, 'root-cert.pem'), 'utf8');
    expect(fs.readFileSync(path.join(dir, 'ca-cert.pem'), 'utf8')).toBe(root);
    expect(certificateInfo(root)).toMatchObject({
      isCa: true,
      subject: 'O=cluster.local, CN=Mizzen Root CA',
    });
    const before = await enroll(first, await first.token('default', 'a'));
    await first.stop();

    const second = await startCitadel({ caDir: dir });
    expect(second.citadel.store.origin).toBe('files');
    expect(fs.readFileSync(path.join(dir, 'root-cert.pem'), 'utf8')).toBe(root);
    const after = await enroll(second, await second.token('default', 'a'));
    expect(after.chain[1]).toBe(root);
    expect(after.chain[1]).toBe(before.chain[1]);
    expect(second.secret).toBe(first.secret);
  });
});

describe('Istio plug-in CA files', () => {
  it('are loaded: the chain is [leaf, ca-cert, root] and verifies to root-cert.pem', async () => {
    const dir = tempDir();
    const set = await plugInSet('Plug');
    writePlugIn(dir, set);
    const h = await startCitadel({ caDir: dir });
    expect(h.citadel.store.origin).toBe('files');
    const w = await enroll(h, await h.token('default', 'reviews'));
    expect(w.chain).toEqual([w.chain[0], set.int.certificate, set.root.certificate]);
    expect(certificateInfo(w.chain[0]!).issuer).toBe('O=cluster.local, CN=Plug Intermediate');
    const verified = await verifyChain({
      leaf: w.chain[0]!,
      intermediates: [w.chain[1]!],
      roots: set.root.certificate,
    });
    expect(verified.ok).toBe(true);
    expect(await (await h.http('/root-cert.pem')).text()).toBe(set.root.certificate);
  });

  it('are reloaded when they change: new issuance chains to the new root, and /root-cert.pem adds it', async () => {
    const dir = tempDir();
    const oldSet = await plugInSet('Old');
    writePlugIn(dir, oldSet);
    const h = await startCitadel({ caDir: dir });
    const token = await h.token('default', 'reviews');
    expect((await enroll(h, token)).chain[2]).toBe(oldSet.root.certificate);

    const newSet = await plugInSet('New');
    const reloaded = once(h.citadel.store, 'reloaded');
    writePlugIn(dir, newSet);
    await reloaded;

    const w = await enroll(h, token);
    expect(w.chain.slice(1)).toEqual([newSet.int.certificate, newSet.root.certificate]);
    expect(
      (await verifyChain({ leaf: w.chain[0]!, intermediates: w.chain[1]!, roots: newSet.root.certificate }))
        .ok,
    ).toBe(true);
    expect(
      (await verifyChain({ leaf: w.chain[0]!, intermediates: w.chain[1]!, roots: oldSet.root.certificate }))
        .ok,
    ).toBe(false);
    // The old root stays trusted while certificates issued under it live: the new one first, then the old.
    expect(await (await h.http('/root-cert.pem')).text()).toBe(
      newSet.root.certificate + oldSet.root.certificate,
    );
    const metrics = await (await h.http('/metrics')).text();
    expect(metrics).toContain(
      `citadel_server_root_cert_expiry_timestamp ${Math.floor(certificateInfo(newSet.root.certificate).notAfter.getTime() / 1000)}`,
    );
    expect(h.logs.find('CA files changed; signing with the new CA')).toMatchObject({
      signer: 'O=cluster.local, CN=New Intermediate',
    });
  });

  it('keep a replaced root in the trust bundle exactly until the last certificate issued under it expires', async () => {
    const dir = tempDir();
    const oldSet = await plugInSet('Old');
    writePlugIn(dir, oldSet);
    const h = await startCitadel({ caDir: dir });
    const token = await h.token('default', 'reviews');
    const short = await enroll(h, token, { ttlSeconds: 2 });
    const lastOld = certificateInfo(short.chain[0]!).notAfter.getTime();

    const newSet = await plugInSet('New');
    const reloaded = once(h.citadel.store, 'reloaded');
    writePlugIn(dir, newSet);
    await reloaded;
    const etag = (await h.http('/root-cert.pem')).headers.get('etag')!;
    expect(h.citadel.store.trustBundle(lastOld - 1)).toEqual([
      newSet.root.certificate,
      oldSet.root.certificate,
    ]);
    // Once the old root's last certificate has expired, the bundle is the new root alone (and its ETag changes).
    expect(h.citadel.store.trustBundle(lastOld + 1)).toEqual([newSet.root.certificate]);
    expect(await (await h.http('/root-cert.pem')).text()).toBe(
      newSet.root.certificate + oldSet.root.certificate,
    );
    await new Promise((r) => setTimeout(r, Math.max(0, lastOld + 50 - Date.now())));
    const after = await h.http('/root-cert.pem', { 'if-none-match': etag });
    expect(after.status).toBe(200);
    expect(await after.text()).toBe(newSet.root.certificate);
  });

  it('keep a replaced root for the max workload TTL when this process issued nothing under it', async () => {
    const dir = tempDir();
    const oldSet = await plugInSet('Old');
    writePlugIn(dir, oldSet);
    const h = await startCitadel({ caDir: dir, maxTtlSeconds: 3600 });
    const newSet = await plugInSet('New');
    const reloaded = once(h.citadel.store, 'reloaded');
    writePlugIn(dir, newSet);
    await reloaded;
    const store = h.citadel.store;
    expect(store.trustBundle(Date.now() + 3_500_000)).toEqual([
      newSet.root.certificate,
      oldSet.root.certificate,
    ]);
    expect(store.trustBundle(Date.now() + 3_700_000)).toEqual([newSet.root.certificate]);
  });

  it('a half-written set keeps the old CA and logs why; completing it switches over', async () => {
    const dir = tempDir();
    const oldSet = await plugInSet('Old');
    writePlugIn(dir, oldSet);
    const h = await startCitadel({ caDir: dir });
    const token = await h.token('default', 'reviews');

    const newSet = await plugInSet('New');
    const failed = once(h.citadel.store, 'reload-failed');
    writePlugIn(dir, newSet, ['ca-cert.pem']);
    const [reason] = (await failed) as [string];
    expect(reason).toMatch(/ca-key.pem does not match the certificate in ca-cert.pem/);
    expect(h.logs.find('CA files changed but do not form a valid CA; keeping the current CA')).toMatchObject({
      level: 'warn',
      reason,
    });
    expect((await enroll(h, token)).chain[2]).toBe(oldSet.root.certificate);

    const reloaded = once(h.citadel.store, 'reloaded');
    writePlugIn(dir, newSet, ['ca-key.pem', 'cert-chain.pem', 'root-cert.pem']);
    await reloaded;
    expect((await enroll(h, token)).chain[2]).toBe(newSet.root.certificate);
    expect(h.logs.text()).not.toMatch(/PRIVATE KEY/);
  });

  it('refuse to start from an incomplete or invalid set, naming the problem', async () => {
    const logger = createLogger('citadel', { destination: new LogCapture() });
    const store = (dir: string) =>
      new CaStore({
        dir,
        trustDomain: 'cluster.local',
        logger,
        selfSignedTtlSeconds: 3600,
        keyType: 'EC-P256',
      });

    const partial = tempDir();
    writePlugIn(partial, await plugInSet('P'), ['ca-cert.pem', 'root-cert.pem']);
    await expect(store(partial).init()).rejects.toThrow(CaStoreError);
    await expect(store(partial).init()).rejects.toThrow(/CA files in .* are incomplete: ca-key.pem missing/);

    const rootOnly = tempDir();
    const operator = await plugInSet('Operator');
    writePlugIn(rootOnly, operator, ['root-cert.pem']);
    await expect(store(rootOnly).init()).rejects.toThrow(
      /are incomplete: ca-cert.pem and ca-key.pem missing/,
    );
    expect(fs.readFileSync(path.join(rootOnly, 'root-cert.pem'), 'utf8')).toBe(operator.root.certificate);

    const mismatched = tempDir();
    const a = await plugInSet('A');
    const b = await plugInSet('B');
    writePlugIn(mismatched, a);
    writePlugIn(mismatched, b, ['ca-key.pem']);
    await expect(store(mismatched).init()).rejects.toThrow(
      /CA files in .* are not a usable CA: ca-key.pem does not match the certificate in ca-cert.pem/,
    );
    expect(fs.readFileSync(path.join(mismatched, 'ca-cert.pem'), 'utf8')).toBe(a.int.certificate);
  });

  it('a self-signed plug-in ca-cert without root-cert.pem gets root-cert.pem written next to it', async () => {
    const dir = tempDir();
    const root = await createRootCa({ subject: 'CN=Operator Root' });
    fs.writeFileSync(path.join(dir, 'ca-cert.pem'), root.certificate);
    fs.writeFileSync(path.join(dir, 'ca-key.pem'), root.privateKeyPem, { mode: 0o600 });
    const h = await startCitadel({ caDir: dir });
    expect(fs.readFileSync(path.join(dir, 'root-cert.pem'), 'utf8')).toBe(root.certificate);
    expect((await enroll(h, await h.token('default', 'a'))).chain).toHaveLength(2);
  });
});
