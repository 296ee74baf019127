import type { ClientTLSSettings, ConfigResource } from '@mizzen/api';
import {
  type EffectivePeerAuthentication,
  effectivePeerAuthentication,
  mtlsModeForPort,
} from '@mizzen/policy';
import { isHttpProtocol } from '../model/protocol.js';
import type { ProxyInfo } from '../model/proxy.js';
import type { Service, ServicePort } from '../registry/model.js';
import { ADS_CONFIG_SOURCE, type Json, RAW_BUFFER } from './envoy.js';
import {
  ALPN_DOWNSTREAM_WITH_MX,
  ALPN_IN_MESH_WITH_MX,
  clusterMetadataExchange,
} from './metadata-exchange.js';
import type { PushContext } from './push-context.js';

export const DOWNSTREAM_TLS_TYPE =
  'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
export const UPSTREAM_TLS_TYPE =
  'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
const TLS_INSPECTOR_TYPE =
  'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector';

/** Istio's SDS names: the workload certificate (from the proxy's own agent) and the mesh roots (from pilot). */
export const WORKLOAD_SECRET = 'default';
export const ROOT_SECRET = 'ROOTCA';

export const TLS_INSPECTOR = {
  name: 'envoy.filters.listener.tls_inspector',
  typed_config: { '@type': TLS_INSPECTOR_TYPE },
};

/**
 * x-forwarded-client-cert as Istio sets it: a sidecar's inbound appends the
 * caller's verified identity for the app; a gateway replaces whatever a
 * client sent with what its TLS handshake proved (gatewayTopology's default).
 */
export const SIDECAR_INBOUND_XFCC = {
  forward_client_cert_details: 'APPEND_FORWARD',
  set_current_client_cert_details: { subject: true, dns: true, uri: true },
};
export const GATEWAY_XFCC = {
  forward_client_cert_details: 'SANITIZE_SET',
  set_current_client_cert_details: { subject: true, cert: true, dns: true, uri: true },
};

/** mTLS applies to a proxy once it holds a workload certificate and pilot has the roots to give it. */
export function meshTlsEnabled(push: PushContext, proxy: ProxyInfo): boolean {
  return proxy.hasCerts && push.rootCert !== undefined;
}

/**
 * Which server identities a mesh client accepts: the SPIFFE ids pilot knows
 * for the destination, else — an endpoint without a service account, such as
 * a ServiceEntry address — any identity of the mesh's trust domain (Istio
 * skips the SAN check then and relies on the mesh root; the certificate must
 * at least carry one of our SPIFFE ids, never merely a DNS name).
 */
function serverSanRules(sans: string[], trustDomain: string): Json {
  if (sans.length) return { match_subject_alt_names: sans.map((exact) => ({ exact })) };
  return {
    match_typed_subject_alt_names: [{ san_type: 'URI', matcher: { prefix: `spiffe://${trustDomain}/` } }],
  };
}

function commonMeshTls(validation: Json): Json {
  return {
    tls_certificate_sds_secret_configs: [{ name: WORKLOAD_SECRET, sds_config: ADS_CONFIG_SOURCE }],
    combined_validation_context: {
      default_validation_context: validation,
      validation_context_sds_secret_config: { name: ROOT_SECRET, sds_config: ADS_CONFIG_SOURCE },
    },
  };
}

/**
 * The inbound side of mesh mTLS: our certificate, a client certificate
 * required and checked against the roots. A TCP chain also accepts Istio's
 * `istio-peer-exchange` ALPN, for the metadata exchange.
 */
export function downstreamMeshTls(protocol: 'http' | 'tcp' = 'http'): Json {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': DOWNSTREAM_TLS_TYPE,
      common_tls_context: {
        ...commonMeshTls({}),
        alpn_protocols: protocol === 'tcp' ? ALPN_DOWNSTREAM_WITH_MX : ['h2', 'http/1.1'],
      },
      require_client_certificate: true,
    },
  };
}

/**
 * The client side of mesh mTLS (ISTIO_MUTUAL): our certificate, the server
 * must prove one of `sans` (any identity in `trustDomain` when none is known);
 * `alpn` offered when given (Istio's `istio-peer-exchange`, `istio` for TCP).
 */
export function upstreamMeshTls(sans: string[], sni: string, trustDomain: string, alpn?: string[]): Json {
  return {
    name: 'envoy.transport_sockets.tls',
    typed_config: {
      '@type': UPSTREAM_TLS_TYPE,
      common_tls_context: {
        ...commonMeshTls(serverSanRules(sans, trustDomain)),
        ...(alpn ? { alpn_protocols: alpn } : {}),
      },
      sni,
    },
  };
}

/** The SPIFFE ids the endpoints of a service may present (Istio's subjectAltNames for auto mTLS). */
export function serviceIdentities(push: PushContext, service: Service, port: number): string[] {
  const ids = new Set<string>();
  for (const e of push.registry.endpoints(service.hostname, port)) {
    if (e.serviceAccount)
      ids.add(`spiffe://${push.mesh.trustDomain}/ns/${service.namespace}/sa/${e.serviceAccount}`);
  }
  return [...ids].sort();
}

/**
 * Istio's SNI for mesh traffic to a cluster: `outbound_.9080_.v1_.reviews.default.svc.cluster.local`;
 * also the name of the cluster an east-west gateway forwards that SNI to.
 */
export function meshSni(port: number, subset: string | undefined, host: string): string {
  return `outbound_.${port}_.${subset ?? ''}_.${host}`;
}

function dataSource(path: string | undefined): Json | undefined {
  return path ? { filename: path } : undefined;
}

/**
 * Istio's TCP metadata exchange on a mesh-mTLS cluster: TCP reaches sidecars
 * through the clusters of non-HTTP ports, which offer `istio-peer-exchange`
 * and carry the exchange filter (sidecars and gateways; proxyless gRPC
 * clients have no TCP).
 */
function withMetadataExchange(cluster: Json, exchange: boolean): string[] | undefined {
  if (!exchange) return undefined;
  cluster.filters = [clusterMetadataExchange()];
  return ALPN_IN_MESH_WITH_MX;
}

/**
 * The transport of an outbound cluster: the DestinationRule's `tls` when it
 * sets one (DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL), else Istio's auto mTLS —
 * mTLS to endpoints whose workloads have a sidecar, plaintext to the rest.
 * Mesh mTLS to a port that carries TCP offers the metadata exchange.
 */
export function applyClusterTls(
  push: PushContext,
  proxy: ProxyInfo,
  cluster: Json,
  service: Service,
  port: ServicePort,
  subset: string | undefined,
  tls: ClientTLSSettings | undefined,
): void {
  const sni = meshSni(port.port, subset, service.hostname);
  const exchange = !proxy.proxyless && !isHttpProtocol(port.protocol);
  switch (tls?.mode) {
    case 'DISABLE':
      return;
    case 'ISTIO_MUTUAL':
      if (meshTlsEnabled(push, proxy)) {
        cluster.transport_socket = upstreamMeshTls(
          tls.subjectAltNames ?? serviceIdentities(push, service, port.port),
          tls.sni ?? sni,
          push.mesh.trustDomain,
          withMetadataExchange(cluster, exchange),
        );
      }
      return;
    case 'SIMPLE':
    case 'MUTUAL': {
      const common: Json = {};
      if (tls.mode === 'MUTUAL') {
        if (tls.credentialName) {
          // Istio's SDS names: the client certificate as `kubernetes://NAME`, the CA as `kubernetes://NAME-cacert`.
          common.tls_certificate_sds_secret_configs = [
            { name: `kubernetes://${tls.credentialName}`, sds_config: ADS_CONFIG_SOURCE },
          ];
        } else {
          common.tls_certificates = [
            { certificate_chain: dataSource(tls.clientCertificate), private_key: dataSource(tls.privateKey) },
          ];
        }
      }
      if (!tls.insecureSkipVerify) {
        const validation: Json = {};
        if (tls.caCertificates) validation.trusted_ca = dataSource(tls.caCertificates);
        if (tls.subjectAltNames?.length)
          validation.match_subject_alt_names = tls.subjectAltNames.map((exact) => ({ exact }));
        if (tls.credentialName && !tls.caCertificates) {
          // The credential's ca.crt verifies the server (SIMPLE and MUTUAL alike).
          common.combined_validation_context = {
            default_validation_context: validation,
            validation_context_sds_secret_config: {
              name: `kubernetes://${tls.credentialName}-cacert`,
              sds_config: ADS_CONFIG_SOURCE,
            },
          };
        } else common.validation_context = validation;
      }
      // Without an explicit sni, the service's own name (Istio's auto SNI from the Host an app sends to it).
      const sniName = tls.sni ?? (service.hostname.includes('*') ? undefined : service.hostname);
      cluster.transport_socket = {
        name: 'envoy.transport_sockets.tls',
        typed_config: {
          '@type': UPSTREAM_TLS_TYPE,
          common_tls_context: common,
          ...(sniName ? { sni: sniName } : {}),
        },
      };
      return;
    }
    default:
      if (!meshTlsEnabled(push, proxy) || service.location === 'MESH_EXTERNAL') return;
      cluster.transport_socket_matches = [
        {
          name: 'tlsMode-istio',
          match: { tlsMode: 'istio' },
          transport_socket: upstreamMeshTls(
            serviceIdentities(push, service, port.port),
            sni,
            push.mesh.trustDomain,
            withMetadataExchange(cluster, exchange),
          ),
        },
        { name: 'tlsMode-disabled', match: {}, transport_socket: RAW_BUFFER },
      ];
  }
}

/**
 * The PeerAuthentication in force for the proxy's workload (Istio's
 * precedence, from libs/policy), or undefined when the proxy cannot take part
 * in mutual TLS (everything is then plaintext).
 */
export function peerAuthenticationFor(
  push: PushContext,
  proxy: ProxyInfo,
): (EffectivePeerAuthentication & { mode: 'STRICT' | 'PERMISSIVE' | 'DISABLE' }) | undefined {
  if (!meshTlsEnabled(push, proxy)) return undefined;
  return effectivePeerAuthentication(
    push.resources as ConfigResource[],
    { namespace: proxy.namespace, labels: proxy.labels },
    { rootNamespace: push.mesh.rootNamespace },
  ) as EffectivePeerAuthentication & { mode: 'STRICT' | 'PERMISSIVE' | 'DISABLE' };
}

/** The PeerAuthentication mode for one of the proxy's ports (Istio's precedence, from libs/policy). */
export function inboundMtlsMode(
  push: PushContext,
  proxy: ProxyInfo,
  targetPort: number,
): 'STRICT' | 'PERMISSIVE' | 'DISABLE' {
  const effective = peerAuthenticationFor(push, proxy);
  if (!effective) return 'DISABLE';
  return mtlsModeForPort(effective, targetPort) as 'STRICT' | 'PERMISSIVE' | 'DISABLE';
}

/** The ROOTCA secret pilot sends every proxy (SDS). */
export function rootSecret(pem: string): Json {
  return { name: ROOT_SECRET, validation_context: { trusted_ca: { inline_string: pem } } };
}
