import { once } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import {
  certificateInfo,
  generateTokenSecret,
  type KeyType,
  mintWorkloadToken,
  parseCertificates,
} from '@mizzen/pki';
import { SecretStore, WORKLOAD_SECRET, WorkloadCertManager } from '@mizzen/proxy';
import { createLogger, freePort } from '@mizzen/runtime';
import { afterEach, describe, expect, it } from 'vitest';
import {
  cleanup,
  type Harness,
  LogCapture,
  mutualTls,
  onCleanup,
  plugInSet,
  startCitadel,
  tempDir,
  writePlugIn,
} from './helpers.js';

/**
 * The sidecar agent's certificate client (libs/proxy WorkloadCertManager)
 * against a real citadel on a real gRPC port: what it installs, when it
 * rotates, how it rides out a CA that is down, and that it only accepts a
 * certificate for exactly its own identity.
 */
afterEach(cleanup);

const CLOCK_SKEW_MS = 60_000;

interface Agent {
  manager: WorkloadCertManager;
  secrets: SecretStore;
  logs: LogCapture;
  tokenFile: string;
}

/** Where an agent finds citadel: its address, the token key, and the root its gRPC certificate chains to. */
interface CaTarget {
  secret: string;
  address: string;
  rootFile: string;
}

function target(h: Harness): CaTarget {
  return {
    secret: h.secret,
    address: `127.0.0.1:${h.ports.grpc}`,
    rootFile: path.join(h.caDir, 'root-cert.pem'),
  };
}

/** An agent for `default/<serviceAccount>` whose token proves `tokenFor` (its own service account unless given). */
async function agent(
  ca: CaTarget,
  serviceAccount: string,
  opts: { tokenFor?: string; ttlSeconds?: number; keyType?: KeyType; rootSettleMs?: number } = {},
): Promise<Agent> {
  const dir = tempDir('agent-');
  const tokenFile = path.join(dir, 'token.jwt');
  const token = await mintWorkloadToken(ca.secret, {
    namespace: 'default',
    serviceAccount: opts.tokenFor ?? serviceAccount,
    ttlSeconds: 600,
  });
  fs.writeFileSync(tokenFile, token, { mode: 0o600 });
  const logs = new LogCapture();
  const secrets = new SecretStore();
  const manager = new WorkloadCertManager({
    caAddress: ca.address,
    caRootCertFile: ca.rootFile,
    tokenFile,
    trustDomain: 'cluster.local',
    namespace: 'default',
    serviceAccount,
    secrets,
    logger: createLogger('sidecar-agent', { destination: logs, level: 'debug' }),
    initialBackoffMs: 100,
    maxBackoffMs: 400,
    ...(opts.ttlSeconds !== undefined ? { ttlSeconds: opts.ttlSeconds } : {}),
    ...(opts.keyType ? { keyType: opts.keyType } : {}),
    ...(opts.rootSettleMs !== undefined ? { rootSettleMs: opts.rootSettleMs } : {}),
  });
  onCleanup(() => manager.stop());
  return { manager, secrets, logs, tokenFile };
}

async function until<T>(what: string, check: () => T | undefined | false, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const v = check();
    if (v !== undefined && v !== false) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The installed workload certificate as node:tls needs it, with the root the chain ends at. */
function installed(a: Agent, root: string): { keyPem: string; chain: string[] } {
  const s = a.secrets.get(WORKLOAD_SECRET);
  if (s?.kind !== 'certificate') throw new Error('no workload certificate installed');
  const pems = s.certChain.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? [];
  return { keyPem: s.privateKey, chain: [...pems, root] };
}

function rootOf(h: Harness): string {
  return h.citadel.store.current().root;
}

describe('the agent’s workload certificates from a real citadel', () => {
  it('gets a certificate for its SPIFFE id and its own key, and presents it in real mutual TLS', async () => {
    const h = await startCitadel();
    const reviews = await agent(target(h), 'reviews');
    const productpage = await agent(target(h), 'productpage', { keyType: 'RSA-2048' });
    await Promise.all([reviews.manager.start(), productpage.manager.start()]);

    const status = reviews.manager.status();
    const root = rootOf(h);
    expect(status).toMatchObject({
      identity: 'spiffe://cluster.local/ns/default/sa/reviews',
      keyType: 'EC-P256',
      rotations: 1,
      rootSerial: certificateInfo(root).serialNumber,
    });
    expect(status.lastError).toBeUndefined();
    const leaf = certificateInfo(installed(reviews, root).chain[0]!);
    expect(leaf.uris).toEqual(['spiffe://cluster.local/ns/default/sa/reviews']);
    expect(leaf.serialNumber).toBe(status.serial);
    expect(certificateInfo(installed(productpage, root).chain[0]!).keyType).toBe('RSA 2048');
    // The root is trusted, not presented.
    expect(
      parseCertificates((reviews.secrets.get(WORKLOAD_SECRET) as { certChain: string }).certChain),
    ).toHaveLength(1);

    const tls = await mutualTls(installed(reviews, root), installed(productpage, root), root);
    expect(tls.clientAuthorized).toBe(true);
    expect(tls.serverSawClient).toBe('URI:spiffe://cluster.local/ns/default/sa/productpage');
    expect(tls.clientSawServer).toBe('URI:spiffe://cluster.local/ns/default/sa/reviews');
  });

  it('rotates at about half of the certificate’s life, with jitter across workloads', async () => {
    const h = await startCitadel();
    const agents = await Promise.all(
      ['a', 'b', 'c', 'd'].map((sa) => agent(target(h), sa, { ttlSeconds: 10 })),
    );
    await Promise.all(agents.map((a) => a.manager.start()));
    const received = Date.now();
    // The agent counts the life from when it received the certificate, somewhere between its issuance
    // (citadel backdates notBefore by its clock-skew minute) and now: the share of the life at which it
    // plans to rotate, seen from either end, brackets the 40–60% it aims for.
    const planned = agents.map((a) => {
      const s = a.manager.status();
      const next = Date.parse(s.nextRotation!);
      const notAfter = Date.parse(s.notAfter!);
      const share = (from: number) => (next - from) / (notAfter - from);
      const issuedAt = Date.parse(s.notBefore!) + CLOCK_SKEW_MS;
      expect(share(issuedAt)).toBeGreaterThanOrEqual(0.4);
      expect(share(received)).toBeLessThanOrEqual(0.6);
      return share(issuedAt);
    });
    // Jittered: a fleet started together does not rotate in step.
    expect(new Set(planned.map((p) => p.toFixed(3))).size).toBeGreaterThan(1);

    const first = agents[0]!;
    const before = first.manager.status();
    const after = await until('the first rotation', () => {
      const s = first.manager.status();
      return s.rotations >= 2 ? s : undefined;
    });
    expect(after.serial).not.toBe(before.serial);
    // Rotated before the old certificate expired, with a new key in place for the next handshake.
    expect(Date.now()).toBeLessThan(Date.parse(before.notAfter!));
    const tls = await mutualTls(installed(first, rootOf(h)), installed(agents[1]!, rootOf(h)), rootOf(h));
    expect(tls.clientAuthorized).toBe(true);
  });

  it('retries with back-off while the CA is unreachable at start, and recovers when it comes up', async () => {
    const port = await freePort();
    const caDir = tempDir();
    // The CA and token key citadel will load from its directory, made first so the agent can trust and prove.
    writePlugIn(caDir, await plugInSet('Operator'));
    const secret = generateTokenSecret();
    fs.writeFileSync(path.join(caDir, 'workload-token.key'), `${secret}\n`, { mode: 0o600 });
    const a = await agent(
      { secret, address: `127.0.0.1:${port}`, rootFile: path.join(caDir, 'root-cert.pem') },
      'reviews',
    );
    const started = a.manager.start();
    const down = await until('a failed attempt reported', () => a.manager.status().lastError);
    expect(down).toMatch(/UNAVAILABLE/);
    const failures = () => a.logs.all('could not get a workload certificate; retrying').length;
    await until('several retries', () => failures() >= 3);
    expect(a.secrets.get(WORKLOAD_SECRET)).toBeUndefined();

    const h = await startCitadel({ caDir, grpcPort: port });
    await started;
    expect(a.manager.status()).toMatchObject({
      rotations: 1,
      rootSerial: certificateInfo(rootOf(h)).serialNumber,
    });
    expect(a.manager.status().lastError).toBeUndefined();
  });

  it('keeps its certificate while the CA is down at rotation time, says why, and rotates once it is back', async () => {
    const caDir = tempDir();
    const h = await startCitadel({ caDir });
    const a = await agent(target(h), 'reviews', { ttlSeconds: 6 });
    await a.manager.start();
    const issued = a.manager.status();
    await h.stop();

    const failing = await until(
      'a failed rotation',
      () => {
        const s = a.manager.status();
        return s.lastError ? s : undefined;
      },
      10_000,
    );
    expect(failing.lastError).toMatch(/UNAVAILABLE/);
    // Still serving with the certificate it had.
    expect(failing.serial).toBe(issued.serial);
    expect(failing.rotations).toBe(1);
    expect(a.secrets.get(WORKLOAD_SECRET)).toBeDefined();

    const back = await startCitadel({ caDir, grpcPort: h.ports.grpc });
    const rotated = await until('a rotation after the CA is back', () => {
      const s = a.manager.status();
      return s.rotations >= 2 ? s : undefined;
    });
    expect(rotated.lastError).toBeUndefined();
    expect(rotated.serial).not.toBe(issued.serial);
    expect(rotated.rootSerial).toBe(certificateInfo(rootOf(back)).serialNumber);
  });

  it('refuses a certificate for another identity, even one its own is a prefix of (…/sa/a vs …/sa/ab)', async () => {
    const h = await startCitadel();
    // The agent is sa "a", but its token proves sa "ab": citadel issues the proven "…/sa/ab".
    const wrong = await agent(target(h), 'a', { tokenFor: 'ab' });
    void wrong.manager.start();
    const error = await until('the certificate refused', () => wrong.manager.status().lastError);
    expect(error).toBe(
      'the CA issued a certificate for spiffe://cluster.local/ns/default/sa/ab, not spiffe://cluster.local/ns/default/sa/a',
    );
    expect(h.logs.all('issued a workload certificate').map((l) => l.identity)).toContain(
      'spiffe://cluster.local/ns/default/sa/ab',
    );
    expect(wrong.secrets.get(WORKLOAD_SECRET)).toBeUndefined();
    expect(wrong.manager.status().rotations).toBe(0);

    // The same agent with a token for its own service account is fine.
    const token = await mintWorkloadToken(h.secret, {
      namespace: 'default',
      serviceAccount: 'a',
      ttlSeconds: 600,
    });
    fs.writeFileSync(wrong.tokenFile, token);
    await until('the certificate after the token is fixed', () => wrong.manager.status().rotations === 1);
    expect(wrong.manager.status().lastError).toBeUndefined();
  });

  it('moves to a rotated root only once the trust bundle has it, while the old root keeps working', async () => {
    const caDir = tempDir();
    const oldSet = await plugInSet('Old');
    writePlugIn(caDir, oldSet);
    const h = await startCitadel({ caDir });
    const a = await agent(target(h), 'reviews', { ttlSeconds: 4, rootSettleMs: 300 });
    const b = await agent(target(h), 'productpage', { ttlSeconds: 3600, rootSettleMs: 300 });
    // What pilot does: every proxy gets citadel's trust bundle as ROOTCA.
    const distribute = () => {
      const trustedCa = h.citadel.store.trustBundle().join('');
      for (const x of [a, b])
        x.secrets.applyRemote([{ name: 'ROOTCA', secret: { kind: 'validation', trustedCa } }]);
      return trustedCa;
    };
    distribute();
    await Promise.all([a.manager.start(), b.manager.start()]);
    const oldSerial = certificateInfo(oldSet.root.certificate).serialNumber;
    expect(a.manager.status().rootSerial).toBe(oldSerial);

    // The operator replaces the plug-in CA: citadel signs with the new root at once…
    const newSet = await plugInSet('New');
    const reloaded = once(h.citadel.store, 'reloaded');
    writePlugIn(caDir, newSet);
    await reloaded;
    const issued = a.manager.status();
    // …but before the proxies have the new root, the agent's next rotation keeps the certificate it has.
    const held = await until('a rotation held back', () => a.manager.status().lastError);
    expect(held).toMatch(/^the CA signs under a root the mesh does not trust yet/);
    expect(a.manager.status()).toMatchObject({ serial: issued.serial, rootSerial: oldSerial });

    // productpage's certificate from the old root, as a peer that has not re-issued yet still presents it.
    const notYetRotated = installed(b, oldSet.root.certificate);
    // The bundle with both roots reaches the proxies: both re-issue under the new root, unprompted.
    const bundle = distribute();
    expect(parseCertificates(bundle)).toHaveLength(2);
    const newSerial = certificateInfo(newSet.root.certificate).serialNumber;
    await until('both agents on the new root', () =>
      [a, b].every((x) => x.manager.status().rootSerial === newSerial && !x.manager.status().lastError),
    );
    expect(b.logs.find('the mesh trust bundle changed; re-issuing the workload certificate')).toBeDefined();
    // Old-root and new-root certificates both verify against the bundle, so nothing breaks in between.
    const rotated = installed(a, newSet.root.certificate);
    for (const [server, client] of [
      [rotated, notYetRotated],
      [notYetRotated, rotated],
    ] as const) {
      const tls = await mutualTls(server, client, bundle);
      expect(tls.clientAuthorized).toBe(true);
    }
  });

  it('reaches the CA over TLS only when its certificate chains to a trusted root: the root file or the mesh bundle', async () => {
    const h = await startCitadel();
    const stranger = await plugInSet('Stranger');
    const wrongRoot = path.join(tempDir(), 'root-cert.pem');
    fs.writeFileSync(wrongRoot, stranger.root.certificate);
    const a = await agent({ ...target(h), rootFile: wrongRoot }, 'reviews');
    void a.manager.start();
    const error = await until('the CA refused as untrusted', () => a.manager.status().lastError);
    expect(error).toMatch(/UNAVAILABLE/);
    expect(a.secrets.get(WORKLOAD_SECRET)).toBeUndefined();
    // The mesh trust bundle pilot sends (ROOTCA) holds citadel's root: now the CA is trusted.
    a.secrets.applyRemote([{ name: 'ROOTCA', secret: { kind: 'validation', trustedCa: rootOf(h) } }]);
    await until('a certificate once the bundle vouches for the CA', () => a.manager.status().rotations === 1);
    expect(a.manager.status().lastError).toBeUndefined();
  });
});
