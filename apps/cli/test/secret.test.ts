import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CredentialDirectory, createCrl, createRootCa, issueTlsCertificate } from '@mizzen/pki';
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
