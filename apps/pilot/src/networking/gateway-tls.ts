import type { ServerTLSSettings, TLSProtocol } from '@mizzen/api';
import { ADS_CONFIG_SOURCE, type Json } from './envoy.js';
import { serverCredential } from './gateway-servers.js';
import { DOWNSTREAM_TLS_TYPE, ROOT_SECRET, WORKLOAD_SECRET } from './mtls.js';

/** Istio's SDS names for credentials: `kubernetes://NAME`, and `kubernetes://NAME-cacert` for its CA. */
export const CREDENTIAL_SDS_PREFIX = 'kubernetes://';
export const CA_SUFFIX = '-cacert';

export function credentialSecretName(credential: string): string {
  return `${CREDENTIAL_SDS_PREFIX}${credential}`;
}

export function credentialCaSecretName(credential: string): string {
  return `${CREDENTIAL_SDS_PREFIX}${credential}${CA_SUFFIX}`;
}

const ENVOY_VERSIONS: Record<TLSProtocol, string | undefined> = {
  TLS_AUTO: undefined,
  TLSV1_0: 'TLSv1_0',
  TLSV1_1: 'TLSv1_1',
  TLSV1_2: 'TLSv1_2',
  TLSV1_3: 'TLSv1_3',
};

function sds(name: string): Json {
  return { name, sds_config: ADS_CONFIG_SOURCE };
}

function file(path: string | undefined): Json | undefined {
  return path ? { filename: path } : undefined;
}

/** minProtocolVersion (TLS 1.2 unless set, Istio's gateway default), maxProtocolVersion and cipherSuites. */
function tlsParams(tls: ServerTLSSettings): Json {
  const params: Json = {
    tls_minimum_protocol_version: ENVOY_VERSIONS[tls.minProtocolVersion ?? 'TLSV1_2'] ?? 'TLSv1_2',
  };
  const max = tls.maxProtocolVersion && ENVOY_VERSIONS[tls.maxProtocolVersion];
  if (max) params.tls_maximum_protocol_version = max;
  if (tls.cipherSuites?.length) params.cipher_suites = [...tls.cipherSuites];
  return params;
}

/**
 * The DownstreamTlsContext of a terminating gateway server, as Istio builds
 * it: the certificate from SDS (`kubernetes://credentialName`) or files on the
 * gateway; for MUTUAL and OPTIONAL_MUTUAL the client CA from SDS
 * (`kubernetes://credentialName-cacert`, or caCertCredentialName) or a file,
 * with the SAN rules; for ISTIO_MUTUAL the workload certificate and the mesh
 * roots. ALPN offers h2 and HTTP/1.1 to HTTP servers.
 */
export function gatewayDownstreamTls(tls: ServerTLSSettings, http: boolean): Json {
  const mode = tls.mode ?? 'SIMPLE';
  const common: Json = { tls_params: tlsParams(tls) };
  if (http) common.alpn_protocols = ['h2', 'http/1.1'];
  const sans = tls.subjectAltNames?.length
    ? { match_subject_alt_names: tls.subjectAltNames.map((exact) => ({ exact })) }
    : {};
  if (mode === 'ISTIO_MUTUAL') {
    common.tls_certificate_sds_secret_configs = [sds(WORKLOAD_SECRET)];
    common.combined_validation_context = {
      default_validation_context: sans,
      validation_context_sds_secret_config: sds(ROOT_SECRET),
    };
  } else {
    const credential = serverCredential(tls);
    if (credential) common.tls_certificate_sds_secret_configs = [sds(credentialSecretName(credential))];
    else
      common.tls_certificates = [
        { certificate_chain: file(tls.serverCertificate), private_key: file(tls.privateKey) },
      ];
    if (mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL') {
      if (credential) {
        common.combined_validation_context = {
          default_validation_context: sans,
          validation_context_sds_secret_config: sds(
            tls.caCertCredentialName
              ? credentialCaSecretName(tls.caCertCredentialName)
              : credentialCaSecretName(credential),
          ),
        };
      } else {
        common.validation_context = { trusted_ca: file(tls.caCertificates), ...sans };
      }
    }
  }
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': DOWNSTREAM_TLS_TYPE,
      common_tls_context: common,
      // OPTIONAL_MUTUAL asks for a certificate and checks one if given, but lets clients without one in.
      require_client_certificate: mode === 'MUTUAL' || mode === 'ISTIO_MUTUAL',
    },
  };
}
