import { TypeUrl } from '@mizzen/xds';
import type { AppliedConfig } from '../agent/applied-config.js';
import type { Secret, SecretStore } from '../security/secret-store.js';

/** What Envoy prints in place of a private key in a config dump. */
const REDACTED = '[redacted]';

function inlineBytes(pem: string): { inline_bytes: string } {
  return { inline_bytes: Buffer.from(pem).toString('base64') };
}

/** A secret as Envoy's `envoy.extensions.transport_sockets.tls.v3.Secret` JSON, the private key redacted. */
export function secretJson(name: string, secret: Secret): Record<string, unknown> {
  if (secret.kind === 'certificate') {
    return {
      '@type': TypeUrl.Secret,
      name,
      tls_certificate: {
        certificate_chain: inlineBytes(secret.certChain),
        private_key: { inline_string: REDACTED },
      },
    };
  }
  return {
    '@type': TypeUrl.Secret,
    name,
    validation_context: {
      trusted_ca: inlineBytes(secret.trustedCa),
      ...(secret.crl ? { crl: inlineBytes(secret.crl) } : {}),
    },
  };
}

/**
 * Envoy's SecretsConfigDump: the secrets the proxy holds (its workload
 * certificate, ROOTCA, gateway credentials) as active, the ones its TLS
 * contexts name but it does not have yet as warming — what
 * `proxy-config secret` reads.
 */
export function secretsConfigDump(
  secrets: SecretStore,
  applied: AppliedConfig,
  names: readonly string[],
): Record<string, unknown> {
  const sdsVersions = new Map(applied.resources(TypeUrl.Secret).map((r) => [r.name, r.version]));
  const active: Record<string, unknown>[] = [];
  const warming: Record<string, unknown>[] = [];
  for (const name of names) {
    const secret = secrets.get(name);
    if (!secret) {
      warming.push({ name });
      continue;
    }
    const lastUpdated = secrets.lastUpdated(name);
    active.push({
      name,
      // Secrets over SDS carry pilot's version; the agent's own (the workload certificate) its time, as istio-agent's do.
      version_info: sdsVersions.get(name) ?? lastUpdated ?? '',
      ...(lastUpdated ? { last_updated: lastUpdated } : {}),
      secret: secretJson(name, secret),
    });
  }
  return {
    '@type': 'type.googleapis.com/envoy.admin.v3.SecretsConfigDump',
    dynamic_active_secrets: active,
    ...(warming.length ? { dynamic_warming_secrets: warming } : {}),
  };
}
