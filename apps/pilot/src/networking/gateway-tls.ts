import type { ServerTLSSettings, TLSProtocol } from '@mizzen/api';
import { fileCertSecretName, fileRootSecretName } from '@mizzen/xds';
import { ADS_CONFIG_SOURCE, type Json } from './envoy.js';
import { serverCredentials } from './gateway-servers.js';
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

/** The SDS names of a terminating server's certificates: its credentials, else its certificate files. */
function certificateSecrets(tls: ServerTLSSettings): string[] {
  const credentials = serverCredentials(tls);
  if (credentials.length) return credentials.map(credentialSecretName);
  const files = tls.tlsCertificates?.length
    ? tls.tlsCertificates
    : [{ serverCertificate: tls.serverCertificate, privateKey: tls.privateKey }];
  return files.map((f) => fileCertSecretName(f.serverCertificate ?? '', f.privateKey ?? ''));
}

/** The SDS name of the CA that verifies clients: caCertCredentialName's or the first credential's `-cacert`, else a file. */
function clientCaSecret(tls: ServerTLSSettings): string | undefined {
  if (tls.caCertCredentialName) return credentialCaSecretName(tls.caCertCredentialName);
  const credential = serverCredentials(tls)[0];
  if (credential) return credentialCaSecretName(credential);
  const file = tls.caCertificates ?? tls.tlsCertificates?.find((t) => t.caCertificates)?.caCertificates;
  return file ? fileRootSecretName(file) : undefined;
}

/** Envoy's checks on a client certificate beyond its chain: SANs, a CRL file, SPKI and certificate pins. */
function clientChecks(tls: ServerTLSSettings): Json {
  return {
    ...(tls.subjectAltNames?.length
      ? { match_subject_alt_names: tls.subjectAltNames.map((exact) => ({ exact })) }
      : {}),
    ...(tls.caCrl ? { crl: file(tls.caCrl) } : {}),
    ...(tls.verifyCertificateSpki?.length ? { verify_certificate_spki: [...tls.verifyCertificateSpki] } : {}),
    ...(tls.verifyCertificateHash?.length ? { verify_certificate_hash: [...tls.verifyCertificateHash] } : {}),
  };
}

/**
 * The DownstreamTlsContext of a terminating gateway server, as Istio builds
 * it: the certificates over SDS — `kubernetes://NAME` for each of
 * credentialName/credentialNames (an RSA and an ECDSA one are both served,
 * picked by what the client accepts), or `file-cert:CERT~KEY` for certificate
 * files (serverCertificate/privateKey, tlsCertificates), which the gateway
 * reads itself; for MUTUAL and OPTIONAL_MUTUAL the client CA
 * (`kubernetes://NAME-cacert`, or `file-root:CA`) and the checks on the
 * client certificate (SANs, CRL, SPKI and hash pins); for ISTIO_MUTUAL the
 * workload certificate and the mesh roots. ALPN offers h2 and HTTP/1.1 to
 * HTTP servers.
 */
export function gatewayDownstreamTls(tls: ServerTLSSettings, http: boolean): Json {
  const mode = tls.mode ?? 'SIMPLE';
  const common: Json = { tls_params: tlsParams(tls) };
  if (http) common.alpn_protocols = ['h2', 'http/1.1'];
  if (mode === 'ISTIO_MUTUAL') {
    common.tls_certificate_sds_secret_configs = [sds(WORKLOAD_SECRET)];
    common.combined_validation_context = {
      default_validation_context: clientChecks(tls),
      validation_context_sds_secret_config: sds(ROOT_SECRET),
    };
  } else {
    common.tls_certificate_sds_secret_configs = certificateSecrets(tls).map(sds);
    const ca = clientCaSecret(tls);
    if ((mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL') && ca) {
      common.combined_validation_context = {
        default_validation_context: clientChecks(tls),
        validation_context_sds_secret_config: sds(ca),
      };
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
