import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CredentialDirectory, createCrl, createRootCa, issueTlsCertificate, PkiError } from '@mizzen/pki';
import { afterAll, describe, expect, it } from 'vitest';

const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'main.js');
const home = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-secret-'));
afterAll(() => fs.rmSync(home, { recursive: true, force: true }));

function mizzen(...args: string[]) {
  const env = { ...process.env, MIZZEN_HOME: home } as Record<string, string | undefined>;
  delete env.MIZZEN_PILOT;
  return spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', env, timeout: 20_000 });
}

describe('mizzen create secret tls (the local credential store gateways use)', () => {
  it('stores a checked credential where pilot serves it, replaces it to rotate, and deletes it', async () => {
    const ca = await createRootCa({ ttlSeconds: 3600 });
    const a = await issueTlsCertificate({ dnsNames: ['bookinfo.local'], issuer: ca, ttlSeconds: 600 });
    const b = await issueTlsCertificate({ dnsNames: ['other.local'], issuer: ca, ttlSeconds: 600 });
    const files: Record<string, string> = {
      'a.crt': a.certificate,
      'a.key': a.privateKeyPem,
      'b.key': b.privateKeyPem,
      'ca.crt': ca.certificate,
      'ca.crl': await createCrl({ issuer: ca, revokedSerials: ['01'] }),
    };
    for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(home, f), text);
    const f = (name: string) => path.join(home, name);

    const created = mizzen(
      'create',
      'secret',
      'tls',
      'bookinfo-cred',
      '--cert',
      f('a.crt'),
      '--key',
      f('a.key'),
    );
    expect(created.stderr).toBe('');
    expect(created.stdout).toBe('secret/bookinfo-cred created\n');
    const again = mizzen(
      'create',
      'secret',
      'tls',
      'bookinfo-cred',
      '--cert',
      f('a.crt'),
      '--key',
      f('a.key'),
      '--cacert',
      f('ca.crt'),
    );
    expect(again.stdout).toBe('secret/bookinfo-cred configured\n');
    const store = new CredentialDirectory(path.join(home, 'credentials'));
    expect(store.read('istio-system', 'bookinfo-cred')).toEqual({
      certificateChain: a.certificate,
      privateKey: a.privateKeyPem,
      caCertificate: ca.certificate,
    });
    // The CA's revocation list travels with it (a Secret's ca.crl): MUTUAL servers refuse what it lists.
    const args = ['create', 'secret', 'tls', 'crl-cred', '--cert', f('a.crt'), '--key', f('a.key')];
    expect(mizzen(...args, '--cacrl', f('ca.crl')).stderr).toBe(
      'error: create secret tls: --cacrl needs --cacert (the CA whose revocations it lists)\n',
    );
    expect(mizzen(...args, '--cacert', f('ca.crt'), '--cacrl', f('ca.crt')).stderr).toBe(
      'error: credential istio-system/crl-cred: ca.crl holds no PEM certificate revocation list\n',
    );
    expect(mizzen(...args, '--cacert', f('ca.crt'), '--cacrl', f('ca.crl')).status).toBe(0);
    expect(store.read('istio-system', 'crl-cred')?.caCrl).toBe(files['ca.crl']);

    // Bad input: one sentence naming what is wrong, a non-zero exit, nothing written.
    const mismatch = mizzen(
      'create',
      'secret',
      'tls',
      'bad',
      '--cert',
      f('a.crt'),
      '--key',
      f('b.key'),
      '-n',
      'default',
    );
    expect(mismatch.status).toBe(1);
    expect(mismatch.stderr).toBe(
      'error: credential default/bad: tls.key does not belong to the certificate in tls.crt\n',
    );
    expect(store.read('default', 'bad')).toBeUndefined();
    const missing = mizzen('create', 'secret', 'tls', 'x', '--cert', f('nope.crt'), '--key', f('a.key'));
    expect(missing.stderr).toBe(`error: --cert ${f('nope.crt')}: ENOENT\n`);
    expect(mizzen('create', 'secret', 'tls', 'x').status).toBe(2);
    expect(mizzen('create', 'configmap', 'x').stderr).toContain('only `mizzen create secret tls');

    expect(mizzen('delete', 'secret', 'bookinfo-cred').stdout).toBe('secret/bookinfo-cred deleted\n');
    const gone = mizzen('delete', 'secret', 'bookinfo-cred');
    expect(gone.stderr).toBe('error: secret istio-system/bookinfo-cred not found\n');
  }, 60_000);
});

describe('mizzen create secret generic (kubectl’s --from-file, as Istio’s docs use it)', () => {
  // About twenty node processes, one per command: the bound leaves room for a loaded 2-core machine.
  it('stores a CA alone, or a certificate and key by kubectl’s or Istio’s keys; refuses a key without its certificate', async () => {
    const ca = await createRootCa({ ttlSeconds: 3600 });
    const a = await issueTlsCertificate({ dnsNames: ['a.example.com'], issuer: ca, ttlSeconds: 600 });
    const dir = path.join(home, 'generic');
    fs.mkdirSync(dir, { recursive: true });
    const files: Record<string, string> = {
      'external-ca.pem': ca.certificate,
      'external.crl': await createCrl({ issuer: ca, revokedSerials: ['02'] }),
      'client.pem': a.certificate,
      'client-key.pem': a.privateKeyPem,
      // A file named as its key: `--from-file=FILE` takes the key from the file's name.
      'ca.crt': ca.certificate,
    };
    for (const [f, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, f), text);
    const f = (name: string) => path.join(dir, name);
    const store = new CredentialDirectory(path.join(home, 'credentials'));

    // Istio's DestinationRule SIMPLE credential: kubectl create secret generic NAME --from-file=ca.crt=…
    const caOnly = mizzen(
      'create',
      'secret',
      'generic',
      'external-ca',
      `--from-file=ca.crt=${f('external-ca.pem')}`,
    );
    expect(caOnly.stderr).toBe('');
    expect(caOnly.stdout).toBe('secret/external-ca created\n');
    expect(store.readCa('istio-system', 'external-ca')).toEqual({ caCertificate: ca.certificate });
    // It is a CA, not a certificate a gateway could serve.
    expect(() => store.read('istio-system', 'external-ca')).toThrow(PkiError);

    // Again, with its revocation list and the key taken from the file's name: a rotation.
    const again = mizzen(
      'create',
      'secret',
      'generic',
      'external-ca',
      '--from-file',
      f('ca.crt'),
      `--from-file=crl=${f('external.crl')}`,
    );
    expect(again.stdout).toBe('secret/external-ca configured\n');
    expect(store.readCa('istio-system', 'external-ca')).toEqual({
      caCertificate: ca.certificate,
      caCrl: files['external.crl'],
    });

    // Istio's generic keys for a MUTUAL credential, in another namespace.
    const generic = mizzen(
      'create',
      'secret',
      'generic',
      'partner',
      `--from-file=cert=${f('client.pem')}`,
      `--from-file=key=${f('client-key.pem')}`,
      `--from-file=cacert=${f('external-ca.pem')}`,
      '-n',
      'default',
    );
    expect(generic.stderr).toBe('');
    expect(store.read('default', 'partner')).toEqual({
      certificateChain: a.certificate,
      privateKey: a.privateKeyPem,
      caCertificate: ca.certificate,
    });
    // kubectl's tls keys, no CA: a certificate and key alone.
    const tlsKeys = mizzen(
      'create',
      'secret',
      'generic',
      'server',
      `--from-file=tls.crt=${f('client.pem')}`,
      `--from-file=tls.key=${f('client-key.pem')}`,
    );
    expect(tlsKeys.stdout).toBe('secret/server created\n');
    expect(store.read('istio-system', 'server')).toEqual({
      certificateChain: a.certificate,
      privateKey: a.privateKeyPem,
    });

    // Bad input: one sentence naming the key or file, a non-zero exit, nothing written.
    const refused: [string[], number, string][] = [
      [
        [`--from-file=tls.key=${f('client-key.pem')}`],
        2,
        'create secret generic: tls.key needs the certificate it belongs to (tls.crt)',
      ],
      [
        [`--from-file=cert=${f('client.pem')}`],
        2,
        'create secret generic: cert needs its private key (tls.key)',
      ],
      [
        [`--from-file=ca.crl=${f('external.crl')}`],
        2,
        'create secret generic: ca.crl needs ca.crt (the CA whose revocations it lists)',
      ],
      [
        [`--from-file=token=${f('client.pem')}`],
        2,
        'create secret generic: key "token" is not one a credential holds; use tls.crt, tls.key, ca.crt, ca.crl (or cert, key, cacert, crl)',
      ],
      [
        [`--from-file=ca.crt=${f('external-ca.pem')}`, `--from-file=cacert=${f('external-ca.pem')}`],
        2,
        'create secret generic: keys "ca.crt" and "cacert" hold the same thing; give one',
      ],
      [
        [],
        2,
        'create secret generic: give its contents with --from-file=KEY=FILE (ca.crt, or tls.crt and tls.key)',
      ],
      [
        ['--cert', f('client.pem')],
        2,
        'create secret generic: --cert is for `create secret tls`; give the file as --from-file=KEY=FILE',
      ],
      // A CA that is no certificate (the key file by mistake).
      [
        [`--from-file=ca.crt=${f('client-key.pem')}`],
        1,
        'credential istio-system/refused: ca.crt holds no PEM certificate',
      ],
      [[`--from-file=ca.crt=${f('nope.pem')}`], 1, `--from-file ${f('nope.pem')}: ENOENT`],
    ];
    for (const [args, status, message] of refused) {
      const r = mizzen('create', 'secret', 'generic', 'refused', ...args);
      expect({ status: r.status, stderr: r.stderr }).toEqual({ status, stderr: `error: ${message}\n` });
      expect(store.has('istio-system', 'refused')).toBe(false);
    }
    expect(mizzen('create', 'secret', 'generic').stderr).toBe(
      'error: create secret generic: give the secret a NAME\n',
    );
    expect(mizzen('help').stdout).toContain('mizzen create secret generic NAME --from-file=KEY=FILE');

    expect(mizzen('delete', 'secret', 'external-ca').stdout).toBe('secret/external-ca deleted\n');
    expect(store.has('istio-system', 'external-ca')).toBe(false);
  }, 120_000);
});
