import { z } from 'zod';
import type { Checker } from '../validation/checker.js';
import { isHttpProtocol, isTlsProtocol, protocolProblem } from '../validation/common.js';
import { ipAddress, namespacedHost, unixAddress } from '../validation/names.js';
import { bool, labels, obj, portOrZero, str, strings } from '../validation/schema.js';
import type { KindValidation } from './context.js';

// ---------------------------------------------------------------------------
// Types: networking.istio.io Gateway (v1 == v1beta1 == v1alpha3).
// ---------------------------------------------------------------------------

export type ServerTLSMode =
  | 'PASSTHROUGH'
  | 'SIMPLE'
  | 'MUTUAL'
  | 'AUTO_PASSTHROUGH'
  | 'ISTIO_MUTUAL'
  | 'OPTIONAL_MUTUAL';
export type TLSProtocol = 'TLS_AUTO' | 'TLSV1_0' | 'TLSV1_1' | 'TLSV1_2' | 'TLSV1_3';

export interface TLSCertificate {
  serverCertificate?: string;
  privateKey?: string;
  caCertificates?: string;
}

export interface ServerTLSSettings {
  httpsRedirect?: boolean;
  mode?: ServerTLSMode;
  serverCertificate?: string;
  privateKey?: string;
  caCertificates?: string;
  caCrl?: string;
  credentialName?: string;
  credentialNames?: string[];
  caCertCredentialName?: string;
  tlsCertificates?: TLSCertificate[];
  subjectAltNames?: string[];
  verifyCertificateSpki?: string[];
  verifyCertificateHash?: string[];
  minProtocolVersion?: TLSProtocol;
  maxProtocolVersion?: TLSProtocol;
  cipherSuites?: string[];
}

export interface Port {
  number: number;
  protocol: string;
  name?: string;
  /** @deprecated has no effect on gateways */
  targetPort?: number;
}

export interface Server {
  port: Port;
  bind?: string;
  hosts: string[];
  tls?: ServerTLSSettings;
  defaultEndpoint?: string;
  name?: string;
}

export interface GatewaySpec {
  servers?: Server[];
  selector?: Record<string, string>;
}

// ---------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------

const TLS_VERSIONS = ['TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3'] as const;

/** Server-side TLS settings, shared with Sidecar ingress listeners. */
export const serverTlsSchema = () =>
  obj({
    httpsRedirect: bool().optional(),
    mode: z
      .enum(['PASSTHROUGH', 'SIMPLE', 'MUTUAL', 'AUTO_PASSTHROUGH', 'ISTIO_MUTUAL', 'OPTIONAL_MUTUAL'])
      .optional(),
    serverCertificate: str().optional(),
    privateKey: str().optional(),
    caCertificates: str().optional(),
    caCrl: str().optional(),
    credentialName: str().optional(),
    credentialNames: strings().optional(),
    caCertCredentialName: str().optional(),
    tlsCertificates: z
      .array(
        obj({
          serverCertificate: str().optional(),
          privateKey: str().optional(),
          caCertificates: str().optional(),
        }),
      )
      .optional(),
    subjectAltNames: strings().optional(),
    verifyCertificateSpki: strings().optional(),
    verifyCertificateHash: strings().optional(),
    minProtocolVersion: z.enum(TLS_VERSIONS).optional(),
    maxProtocolVersion: z.enum(TLS_VERSIONS).optional(),
    cipherSuites: strings().optional(),
  });

export const gatewaySchema = obj({
  servers: z
    .array(
      obj({
        port: obj({
          number: portOrZero(),
          protocol: str(),
          name: str().optional(),
          targetPort: portOrZero().optional(),
        }),
        bind: str().optional(),
        hosts: strings(),
        tls: serverTlsSchema().optional(),
        defaultEndpoint: str().optional(),
        name: str().optional(),
      }),
    )
    .optional(),
  selector: labels().optional(),
});

// ---------------------------------------------------------------------------
// Semantic checks (Istio's ValidateGateway)
// ---------------------------------------------------------------------------

function checkGateway(spec: GatewaySpec, at: Checker): void {
  const servers = spec.servers ?? [];
  if (servers.length === 0) at.at('servers').error('at least one server is required');
  const portNames = new Map<string, number>();
  for (const [i, server] of servers.entries()) {
    const here = at.at('servers', i);
    checkServer(server, here);
    const name = server.port.name;
    if (name === undefined) {
      here
        .at('port', 'name')
        .warn('the port has no name; Istio requires one, so this Gateway would be rejected there');
    } else if (portNames.has(name)) {
      here
        .at('port', 'name')
        .error(
          `port names must be unique across servers: "${name}" is also used by servers[${portNames.get(name)}]`,
        );
    } else {
      portNames.set(name, i);
    }
  }
}

function checkServer(server: Server, at: Checker): void {
  if (server.hosts.length === 0) at.at('hosts').error('at least one host is required (use "*" for any)');
  for (const [i, host] of server.hosts.entries()) at.at('hosts', i).check(namespacedHost(host, 'gateway'));

  const port = server.port;
  const unix = server.bind?.startsWith('unix://') ?? false;
  if (port.number === 0 && !unix)
    at.at('port', 'number').error('must be a port number between 1 and 65535, got 0');
  if (port.number !== 0 && unix)
    at.at('port', 'number').error('must be 0 for a server bound to a unix domain socket');
  const protocolOk = at
    .at('port', 'protocol')
    .check(port.protocol === '' ? 'must not be empty' : protocolProblem(port.protocol));
  if (port.targetPort !== undefined)
    at.at('port', 'targetPort').error('targetPort has no effect on gateways; remove it');
  if (server.bind !== undefined)
    at.at('bind').check(unix ? unixAddress(server.bind) : ipAddress(server.bind));

  if (server.tls) checkServerTls(server.tls, at.at('tls'));
  if (!protocolOk) return;
  if (isTlsProtocol(port.protocol) && !server.tls) {
    at.at('tls').error(`a ${port.protocol.toUpperCase()} server needs tls settings`);
  } else if (!isTlsProtocol(port.protocol) && server.tls) {
    const tls = server.tls;
    const redirectOnly =
      tls.httpsRedirect === true &&
      (tls.mode === undefined || tls.mode === 'PASSTHROUGH') &&
      !tls.serverCertificate &&
      !tls.privateKey &&
      !tls.caCertificates &&
      !tls.credentialName;
    if (!isHttpProtocol(port.protocol))
      at.at('tls').error(`a ${port.protocol.toUpperCase()} server cannot have tls settings`);
    else if (!redirectOnly) at.at('tls').error('a plain-text HTTP server can only set tls.httpsRedirect');
  }
  if (server.tls?.httpsRedirect && !isHttpProtocol(port.protocol)) {
    at.at('tls', 'httpsRedirect').warn('httpsRedirect only applies to HTTP servers');
  }
}

/** Istio's validateTLSOptions. */
export function checkServerTls(tls: ServerTLSSettings, at: Checker): void {
  const mode = tls.mode ?? 'PASSTHROUGH';
  const hasCredential = Boolean(
    tls.credentialName || tls.credentialNames?.length || tls.tlsCertificates?.length,
  );
  if (mode === 'ISTIO_MUTUAL') {
    for (const f of [
      'serverCertificate',
      'privateKey',
      'caCertificates',
      'credentialName',
      'credentialNames',
      'tlsCertificates',
    ] as const) {
      if (tls[f] !== undefined)
        at.at(f).error('cannot be set with ISTIO_MUTUAL (Istio provides the certificates)');
    }
    checkClientPins(tls, at);
    return;
  }
  if (mode === 'PASSTHROUGH' || mode === 'AUTO_PASSTHROUGH') {
    if (tls.serverCertificate || tls.privateKey || tls.caCertificates || tls.credentialName || tls.caCrl) {
      at.warn(`${mode} mode does not terminate TLS, so its certificates are ignored`);
    }
  }
  const sources = (['credentialName', 'credentialNames', 'tlsCertificates'] as const).filter((f) =>
    Array.isArray(tls[f]) ? (tls[f] as unknown[]).length > 0 : Boolean(tls[f]),
  );
  if (sources.length > 1) at.error(`only one of ${sources.join(', ')} may be set`);
  for (const f of ['credentialNames', 'tlsCertificates'] as const) {
    if ((tls[f]?.length ?? 0) > 2)
      at.at(f).error(
        'at most 2 entries: one RSA and one ECDSA certificate, picked by what the client accepts',
      );
  }
  if (tls.tlsCertificates?.length && (tls.serverCertificate || tls.privateKey))
    at.error('serverCertificate and privateKey cannot be set with tlsCertificates');
  for (const [i, t] of (tls.tlsCertificates ?? []).entries()) {
    if (!t.serverCertificate) at.at('tlsCertificates', i, 'serverCertificate').error('is required');
    if (!t.privateKey) at.at('tlsCertificates', i, 'privateKey').error('is required');
  }
  if (mode === 'SIMPLE' || mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL') {
    if (!hasCredential) {
      if (!tls.serverCertificate)
        at.at('serverCertificate').error(`${mode} TLS needs a server certificate (or a credentialName)`);
      if (!tls.privateKey) at.at('privateKey').error(`${mode} TLS needs a private key (or a credentialName)`);
      if (mode !== 'SIMPLE' && !tls.caCertificates) {
        at.at('caCertificates').error(
          `${mode} TLS needs a CA bundle to verify clients (or a credentialName)`,
        );
      }
    }
  }
  if (
    (mode === 'MUTUAL' || mode === 'OPTIONAL_MUTUAL') &&
    tls.tlsCertificates?.length &&
    !tls.caCertificates &&
    !tls.tlsCertificates.some((t) => t.caCertificates)
  )
    at.at('caCertificates').error(`${mode} TLS needs a CA bundle to verify clients`);
  if (tls.caCrl) {
    if (tls.credentialName || tls.credentialNames?.length)
      at.at('caCrl').error('is not supported with credentialName; put the CRL in the credential (ca.crl)');
    if (mode === 'SIMPLE') at.at('caCrl').error('is not supported with SIMPLE TLS');
  }
  checkClientPins(tls, at);
  if (mode === 'SIMPLE' && (tls.verifyCertificateSpki?.length || tls.verifyCertificateHash?.length))
    at.warn(
      'verifyCertificateSpki/verifyCertificateHash check client certificates, which SIMPLE TLS does not ask for',
    );
  if (
    (tls.minProtocolVersion === 'TLSV1_0' || tls.minProtocolVersion === 'TLSV1_1') &&
    !tls.cipherSuites?.length
  ) {
    at.at('minProtocolVersion').warn(
      'TLS versions below 1.2 need cipherSuites set: the defaults do not include compatible ciphers',
    );
  }
  const order = ['TLS_AUTO', 'TLSV1_0', 'TLSV1_1', 'TLSV1_2', 'TLSV1_3'];
  if (
    tls.minProtocolVersion &&
    tls.maxProtocolVersion &&
    tls.minProtocolVersion !== 'TLS_AUTO' &&
    tls.maxProtocolVersion !== 'TLS_AUTO' &&
    order.indexOf(tls.minProtocolVersion) > order.indexOf(tls.maxProtocolVersion)
  ) {
    at.at('minProtocolVersion').error(`is higher than maxProtocolVersion (${tls.maxProtocolVersion})`);
  }
}

/** Envoy's pins: base64 SHA-256 digests of a SubjectPublicKeyInfo; hex SHA-256 fingerprints (colons allowed). */
function checkClientPins(tls: ServerTLSSettings, at: Checker): void {
  for (const [i, pin] of (tls.verifyCertificateSpki ?? []).entries()) {
    const ok = /^[A-Za-z0-9+/]{43}=$/.test(pin);
    if (!ok)
      at.at('verifyCertificateSpki', i).error(
        `"${pin}" is not a base64 SHA-256 digest of a public key (44 characters, as openssl pkey -pubin -outform der | openssl dgst -sha256 -binary | base64 prints)`,
      );
  }
  for (const [i, hash] of (tls.verifyCertificateHash ?? []).entries()) {
    if (!/^[0-9a-fA-F]{64}$/.test(hash.replace(/:/g, '')))
      at.at('verifyCertificateHash', i).error(
        `"${hash}" is not a SHA-256 certificate fingerprint (64 hex digits, colons allowed)`,
      );
  }
}

function checkGatewayMetadata(meta: { name: string }, at: Checker): void {
  // Istio requires a DNS label (no dots) for Gateway names, since VirtualServices refer to them as ns/name.
  if (meta.name.includes('.'))
    at.at('name').error(`"${meta.name}" is not a valid Gateway name: it cannot contain dots`);
}

export const gateway: KindValidation<GatewaySpec> = {
  schema: gatewaySchema,
  check: checkGateway,
  checkMetadata: checkGatewayMetadata,
};
