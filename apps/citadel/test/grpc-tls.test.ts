import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { certificateInfo, verifyChain } from '@mizzen/pki';
import { CaClient, CaClientError } from '@mizzen/xds';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, enroll, type Harness, plugInSet, startCitadel, tempDir } from './helpers.js';

/**
 * citadel's CA port over TLS, as istiod serves its CA: a certificate for
 * citadel's names issued by its own CA, which agents verify with the mesh
 * root — so service-account tokens never cross the network in clear. Checked
 * from outside with openssl and node:tls, and with the real gRPC client.
 */
afterEach(cleanup);

/** The chain citadel's gRPC port presents, as node:tls sees it (ALPN h2, as gRPC). */
function servingChain(port: number): Promise<{ pems: string[]; san: string; serial: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ALPNProtocols: ['h2'] });
    s.once('secureConnect', () => {
      const pems: string[] = [];
      let c: tls.DetailedPeerCertificate | undefined = s.getPeerCertificate(true);
      while (c?.raw && !pems.some((p) => p.includes(c!.raw.toString('base64').slice(0, 64)))) {
        pems.push(
          `-----BEGIN CERTIFICATE-----\n${c.raw.toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`,
        );
        c = c.issuerCertificate === c ? undefined : c.issuerCertificate;
      }
      const leaf = s.getPeerCertificate();
      resolve({ pems, san: leaf.subjectaltname ?? '', serial: leaf.serialNumber.toLowerCase() });
      s.destroy();
    });
    s.once('error', reject);
  });
}

/** Runs openssl with an empty stdin; resolves with everything it printed. */
function openssl(args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.once('error', reject);
    child.once('close', () => {
      clearTimeout(timer);
      resolve(out);
    });
    child.stdin.end();
  });
}

async function refusedWith(h: Harness, client: CaClient): Promise<CaClientError> {
  const err = await enroll({ client }, await h.token('default', 'reviews')).then(
    () => undefined,
    (e: unknown) => e,
  );
  client.close();
  expect(err).toBeInstanceOf(CaClientError);
  return err as CaClientError;
}

describe('the CA over TLS', () => {
  it('presents a certificate for its names, issued by its own CA, that openssl verifies against the mesh root', async () => {
    const dir = tempDir();
    const h = await startCitadel({ caDir: dir });
    const { pems, san } = await servingChain(h.ports.grpc);
    expect(san).toBe('DNS:localhost, IP Address:127.0.0.1');
    const leaf = certificateInfo(pems[0]!);
    expect(leaf).toMatchObject({ subject: 'CN=istio-citadel', isCa: false });
    expect(leaf.issuer).toBe(h.citadel.store.current().signerInfo.subject);
    expect(h.citadel.serving?.info()?.serial).toBe(leaf.serialNumber);
    const rootFile = path.join(dir, 'root-cert.pem');
    expect((await verifyChain({ leaf: pems[0]!, roots: fs.readFileSync(rootFile, 'utf8') })).ok).toBe(true);

    // Asynchronously: this citadel runs in the test's own process, so its event loop must keep turning.
    const out = await openssl([
      's_client',
      '-connect',
      `127.0.0.1:${h.ports.grpc}`,
      '-CAfile',
      rootFile,
      '-verify_return_error',
      '-verify_ip',
      '127.0.0.1',
      '-alpn',
      'h2',
    ]);
    expect(out).toMatch(/Verify return code: 0 \(ok\)/);
    expect(out).toMatch(/ALPN protocol: h2/);
  });

  it('chains through a plug-in intermediate: the client needs only the root', async () => {
    const dir = tempDir();
    const set = await plugInSet('Operator');
    fs.writeFileSync(path.join(dir, 'ca-cert.pem'), set.int.certificate);
    fs.writeFileSync(path.join(dir, 'ca-key.pem'), set.int.privateKeyPem, { mode: 0o600 });
    fs.writeFileSync(path.join(dir, 'cert-chain.pem'), set.int.certificate + set.root.certificate);
    fs.writeFileSync(path.join(dir, 'root-cert.pem'), set.root.certificate);
    const h = await startCitadel({ caDir: dir });
    const { pems } = await servingChain(h.ports.grpc);
    expect(pems.slice(1)).toEqual([set.int.certificate]);
    const client = new CaClient({
      address: `127.0.0.1:${h.ports.grpc}`,
      rootCertificates: set.root.certificate,
    });
    const w = await enroll({ client }, await h.token('default', 'reviews'));
    client.close();
    expect(w.chain.at(-1)).toBe(set.root.certificate);
  });

  it('refuses clients that do not trust its root, that ask by a name it is not, or that speak plaintext', async () => {
    const h = await startCitadel({ grpcTls: { names: ['istio-citadel.istio-system.svc'] } });
    const address = `127.0.0.1:${h.ports.grpc}`;
    const stranger = await plugInSet('Stranger');
    const untrusted = await refusedWith(
      h,
      new CaClient({ address, rootCertificates: stranger.root.certificate }),
    );
    expect(untrusted.codeName).toBe('UNAVAILABLE');
    // The right root, but 127.0.0.1 is not one of the certificate's names.
    const misnamed = await refusedWith(h, new CaClient({ address, rootCertificates: h.roots }));
    expect(misnamed.codeName).toBe('UNAVAILABLE');
    expect(misnamed.details).toMatch(/127\.0\.0\.1/);
    const plaintext = await refusedWith(h, new CaClient({ address }));
    expect(plaintext.codeName).toBe('UNAVAILABLE');
    // Nothing was issued to any of them.
    expect(h.logs.all('issued a workload certificate')).toEqual([]);
  });

  it('renews its serving certificate at half its life; new connections get the new one', async () => {
    const h = await startCitadel({ grpcTls: { names: ['127.0.0.1'], ttlSeconds: 4 } });
    const first = (await servingChain(h.ports.grpc)).serial;
    const deadline = Date.now() + 10_000;
    let next = first;
    while (next === first && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      next = (await servingChain(h.ports.grpc)).serial;
    }
    expect(next).not.toBe(first);
    expect(h.logs.find('renewed the gRPC serving certificate')).toMatchObject({ serial: next });
    // The client of before still gets certificates (same root).
    expect((await enroll(h, await h.token('default', 'reviews'))).chain).toHaveLength(2);
  });

  it('serves plaintext only when asked (--grpc-plaintext), and warns that tokens then cross in clear', async () => {
    const h = await startCitadel({ plaintext: true });
    expect(h.citadel.serving).toBeUndefined();
    expect((await enroll(h, await h.token('default', 'reviews'))).chain).toHaveLength(2);
    expect(h.logs.find('citadel ready')).toMatchObject({ grpcTls: 'plaintext (--grpc-plaintext)' });
    expect(
      h.logs.find(
        'the CA serves gRPC without TLS (--grpc-plaintext): service-account tokens cross the network in clear; use it for local debugging only',
      ),
    ).toMatchObject({ level: 'warn' });
  });
});
