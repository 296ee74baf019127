import { TypeUrl } from '@mizzen/xds';
import { describe, expect, it } from 'vitest';
import { secretsConfigDump } from '../src/admin/secrets-dump.js';
import { AppliedConfig } from '../src/agent/applied-config.js';
import { SecretStore } from '../src/security/secret-store.js';

const CHAIN = '-----BEGIN CERTIFICATE-----\nleaf\n-----END CERTIFICATE-----\n';
const ROOT = '-----BEGIN CERTIFICATE-----\nroot\n-----END CERTIFICATE-----\n';
const b64 = (s: string) => Buffer.from(s).toString('base64');

describe("the admin config dump's SecretsConfigDump", () => {
  it('lists held secrets as active (private keys redacted) and named but missing ones as warming', () => {
    const store = new SecretStore();
    const applied = new AppliedConfig();
    store.setLocal('default', { kind: 'certificate', certChain: CHAIN, privateKey: 'SECRET KEY' });
    store.applyRemote([{ name: 'ROOTCA', secret: { kind: 'validation', trustedCa: ROOT } }]);
    applied.record(TypeUrl.Secret, 'v7', [{ typeUrl: TypeUrl.Secret, name: 'ROOTCA', json: {} }]);
    const dump = secretsConfigDump(store, applied, ['default', 'ROOTCA', 'kubernetes://gw-cred']);
    expect(JSON.stringify(dump)).not.toContain('SECRET KEY');
    expect(dump['@type']).toBe('type.googleapis.com/envoy.admin.v3.SecretsConfigDump');
    const [workload, root] = dump.dynamic_active_secrets as Record<string, unknown>[];
    expect(workload).toMatchObject({
      name: 'default',
      version_info: store.lastUpdated('default'),
      secret: {
        '@type': TypeUrl.Secret,
        name: 'default',
        tls_certificate: {
          certificate_chain: { inline_bytes: b64(CHAIN) },
          private_key: { inline_string: '[redacted]' },
        },
      },
    });
    expect(root).toMatchObject({
      name: 'ROOTCA',
      version_info: 'v7',
      secret: { validation_context: { trusted_ca: { inline_bytes: b64(ROOT) } } },
    });
    expect(dump.dynamic_warming_secrets).toEqual([{ name: 'kubernetes://gw-cred' }]);
    store.close();
  });
});
