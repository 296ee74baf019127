import { type Fields, HONOURED, honouredOnlyAs, INERT, typed } from '../understood.js';
import { ADS_CONFIG_SOURCE, STRING_MATCHER } from './common.js';

/** The TLS contexts (transport sockets) of listeners and clusters, as the proxy honours them. */

export const DOWNSTREAM_TLS_TYPE =
  'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
export const UPSTREAM_TLS_TYPE =
  'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
export const RAW_BUFFER_TYPE =
  'type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer';

const DATA_SOURCE: Fields = { inline_string: HONOURED, inline_bytes: HONOURED, filename: HONOURED };

const SDS_SECRET_CONFIG: Fields = { name: HONOURED, sds_config: ADS_CONFIG_SOURCE };

const VALIDATION_CONTEXT: Fields = {
  trusted_ca: DATA_SOURCE,
  crl: DATA_SOURCE,
  verify_certificate_spki: HONOURED,
  verify_certificate_hash: HONOURED,
  match_subject_alt_names: STRING_MATCHER,
  match_typed_subject_alt_names: { san_type: HONOURED, matcher: STRING_MATCHER },
  trust_chain_verification: honouredOnlyAs(['VERIFY_TRUST_CHAIN'], 'the peer chain is always verified'),
};

const COMMON_TLS_CONTEXT: Fields = {
  tls_params: {
    tls_minimum_protocol_version: HONOURED,
    tls_maximum_protocol_version: HONOURED,
    cipher_suites: HONOURED,
  },
  tls_certificates: { certificate_chain: DATA_SOURCE, private_key: DATA_SOURCE },
  tls_certificate_sds_secret_configs: SDS_SECRET_CONFIG,
  validation_context: VALIDATION_CONTEXT,
  validation_context_sds_secret_config: SDS_SECRET_CONFIG,
  combined_validation_context: {
    default_validation_context: VALIDATION_CONTEXT,
    validation_context_sds_secret_config: SDS_SECRET_CONFIG,
  },
  alpn_protocols: HONOURED,
};

export const DOWNSTREAM_TLS_CONTEXT: Fields = {
  common_tls_context: COMMON_TLS_CONTEXT,
  require_client_certificate: HONOURED,
};

export const UPSTREAM_TLS_CONTEXT: Fields = {
  common_tls_context: COMMON_TLS_CONTEXT,
  sni: HONOURED,
};

/** envoy.config.core.v3.TransportSocket: plain, or TLS one way or the other (compileTransportSocket picks). */
export const TRANSPORT_SOCKET: Fields = {
  // Names the socket's extension; the typed config says what it is.
  name: INERT,
  typed_config: typed({
    [DOWNSTREAM_TLS_TYPE]: DOWNSTREAM_TLS_CONTEXT,
    [UPSTREAM_TLS_TYPE]: UPSTREAM_TLS_CONTEXT,
    [RAW_BUFFER_TYPE]: {},
  }),
};
