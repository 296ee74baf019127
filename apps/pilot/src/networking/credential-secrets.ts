import type { ProxyInfo } from '../model/proxy.js';
import type { Json } from './envoy.js';
import { CA_SUFFIX, CREDENTIAL_SDS_PREFIX } from './gateway-tls.js';
import type { PushContext } from './push-context.js';

/** Every SDS secret name a set of resources refers to (`{ name, sds_config }` anywhere inside them). */
export function sdsSecretNames(resources: readonly unknown[]): Set<string> {
  const names = new Set<string>();
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) {
      for (const x of v) walk(x);
      return;
    }
    if (!v || typeof v !== 'object') return;
    const o = v as Record<string, unknown>;
    if (typeof o.name === 'string' && o.sds_config !== undefined) names.add(o.name);
    for (const x of Object.values(o)) walk(x);
  };
  walk(resources);
  return names;
}

/**
 * The credentials a proxy's listeners and clusters name over SDS, as Istio
 * serves them: `kubernetes://NAME` is the certificate and key of credential
 * NAME, `kubernetes://NAME-cacert` its CA. Only the proxy's own namespace is
 * searched. A credential that cannot be served is left out: the server that
 * needs it was not opened (gateways), or the cluster's TLS cannot start until
 * it appears — it never falls back to something weaker.
 */
export function credentialSecrets(push: PushContext, proxy: ProxyInfo, names: Iterable<string>): Json[] {
  const out: Json[] = [];
  for (const name of [...names].sort()) {
    if (!name.startsWith(CREDENTIAL_SDS_PREFIX)) continue;
    const credential = name.slice(CREDENTIAL_SDS_PREFIX.length);
    if (credential.endsWith(CA_SUFFIX)) {
      const found = push.credentials.resolve(proxy.namespace, credential.slice(0, -CA_SUFFIX.length));
      if ('credential' in found && found.credential.caCertificate)
        out.push({
          name,
          validation_context: {
            trusted_ca: { inline_string: found.credential.caCertificate },
            ...(found.credential.caCrl ? { crl: { inline_string: found.credential.caCrl } } : {}),
          },
        });
      continue;
    }
    const found = push.credentials.resolve(proxy.namespace, credential);
    if ('credential' in found)
      out.push({
        name,
        tls_certificate: {
          certificate_chain: { inline_string: found.credential.certificateChain },
          private_key: { inline_string: found.credential.privateKey },
        },
      });
  }
  return out;
}
