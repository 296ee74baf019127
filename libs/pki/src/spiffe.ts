import { PkiError } from './errors.js';

/** A workload identity: who a certificate says its holder is. */
export interface SpiffeIdentity {
  trustDomain: string;
  namespace: string;
  serviceAccount: string;
}

export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

const SPIFFE_SCHEME = 'spiffe://';
/** SPIFFE trust domains: lowercase letters, digits, '.', '-', '_' (SPIFFE-ID spec §2.1). */
const TRUST_DOMAIN = /^[a-z0-9._-]+$/;
/** Kubernetes namespace: a DNS-1123 label. */
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** Kubernetes service account name: a DNS-1123 subdomain. */
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const SERVICE_ACCOUNT_USER_PREFIX = 'system:serviceaccount:';

function invalid(message: string): PkiError {
  return new PkiError('invalid-identity', message);
}

function shown(value: string): string {
  return JSON.stringify(value.length > 300 ? `${value.slice(0, 300)}…` : value);
}

export function validateTrustDomain(trustDomain: string): string {
  if (!trustDomain || trustDomain.length > 255 || !TRUST_DOMAIN.test(trustDomain)) {
    throw invalid(
      `trust domain ${shown(trustDomain)} must be 1-255 lowercase letters, digits, '.', '-' or '_'`,
    );
  }
  return trustDomain;
}

export function validateNamespace(namespace: string): string {
  if (!namespace || namespace.length > 63 || !DNS_LABEL.test(namespace)) {
    throw invalid(`namespace ${shown(namespace)} must be a DNS-1123 label (lowercase letters, digits, '-')`);
  }
  return namespace;
}

export function validateServiceAccount(serviceAccount: string): string {
  if (!serviceAccount || serviceAccount.length > 253 || !DNS_SUBDOMAIN.test(serviceAccount)) {
    throw invalid(
      `service account ${shown(serviceAccount)} must be a DNS-1123 subdomain (lowercase letters, digits, '-', '.')`,
    );
  }
  return serviceAccount;
}

function validated(id: SpiffeIdentity): SpiffeIdentity {
  return {
    trustDomain: validateTrustDomain(id.trustDomain),
    namespace: validateNamespace(id.namespace),
    serviceAccount: validateServiceAccount(id.serviceAccount),
  };
}

/** `spiffe://cluster.local/ns/default/sa/bookinfo-reviews` */
export function formatSpiffeId(id: SpiffeIdentity): string {
  const v = validated(id);
  return `${SPIFFE_SCHEME}${v.trustDomain}/ns/${v.namespace}/sa/${v.serviceAccount}`;
}

function parsePath(rest: string, what: string, original: string): SpiffeIdentity {
  const parts = rest.split('/');
  if (parts.length !== 5 || parts[1] !== 'ns' || parts[3] !== 'sa') {
    throw invalid(
      `${what} ${shown(original)} is not of the form ${what === 'principal' ? '' : 'spiffe://'}<trust-domain>/ns/<namespace>/sa/<service-account>`,
    );
  }
  const [trustDomain, , namespace, , serviceAccount] = parts as [string, string, string, string, string];
  return validated({ trustDomain, namespace, serviceAccount });
}

/** Parses an Istio workload SPIFFE id; throws a PkiError naming what is wrong. */
export function parseSpiffeId(uri: string): SpiffeIdentity {
  if (typeof uri !== 'string' || !uri.startsWith(SPIFFE_SCHEME)) {
    throw invalid(`${shown(String(uri))} is not a SPIFFE id (it must start with spiffe://)`);
  }
  return parsePath(uri.slice(SPIFFE_SCHEME.length), 'SPIFFE id', uri);
}

export function isSpiffeId(uri: string): boolean {
  try {
    parseSpiffeId(uri);
    return true;
  } catch {
    return false;
  }
}

/** Istio's principal form, as AuthorizationPolicy writes it: `cluster.local/ns/default/sa/bookinfo-reviews`. */
export function toPrincipal(id: SpiffeIdentity | string): string {
  const v = typeof id === 'string' ? parseSpiffeId(id) : validated(id);
  return `${v.trustDomain}/ns/${v.namespace}/sa/${v.serviceAccount}`;
}

export function parsePrincipal(principal: string): SpiffeIdentity {
  if (typeof principal !== 'string' || principal.startsWith(SPIFFE_SCHEME)) {
    throw invalid(`principal ${shown(String(principal))} must not carry the spiffe:// scheme`);
  }
  return parsePath(principal, 'principal', principal);
}

/** The Kubernetes user name of a service account: `system:serviceaccount:<namespace>:<name>`. */
export function serviceAccountUsername(namespace: string, serviceAccount: string): string {
  return `${SERVICE_ACCOUNT_USER_PREFIX}${validateNamespace(namespace)}:${validateServiceAccount(serviceAccount)}`;
}

/** The namespace and name in a Kubernetes service-account user name; throws for any other user. */
export function parseServiceAccountUsername(username: string): { namespace: string; serviceAccount: string } {
  if (typeof username !== 'string' || !username.startsWith(SERVICE_ACCOUNT_USER_PREFIX)) {
    throw invalid(
      `${shown(String(username))} is not a service account (system:serviceaccount:<namespace>:<name>)`,
    );
  }
  const parts = username.slice(SERVICE_ACCOUNT_USER_PREFIX.length).split(':');
  if (parts.length !== 2) {
    throw invalid(`${shown(username)} is not of the form system:serviceaccount:<namespace>:<name>`);
  }
  return { namespace: validateNamespace(parts[0]!), serviceAccount: validateServiceAccount(parts[1]!) };
}
