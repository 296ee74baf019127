import net from 'node:net';

/**
 * Name, host, label and address checks, following Kubernetes
 * (apimachinery validation) and Istio (pkg/config/validation). Each returns
 * the reason a value is invalid, or undefined when it is fine.
 */

/** Kubernetes DNS-1123 label: lower case, used for namespaces. */
const K8S_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** Istio's DNS label, which also allows upper case (subset and port names, host labels). */
const DNS_LABEL = /^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$/;
/** A first host label that may be `*`, `*foo` or `*-foo` (Istio's IsWildcardDNS1123Label). */
const WILDCARD_LABEL = /^(\*|(\*|\*-)?[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)$/;
/** The name part of a label key, and a non-empty label value. */
const QUALIFIED_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

const LABEL_HINT = 'use letters, digits and "-", starting and ending with a letter or digit';

/** A Kubernetes object name (DNS-1123 subdomain): lower case, at most 253 characters. */
export function resourceName(value: string): string | undefined {
  if (value === '') return 'must not be empty';
  if (value.length > 253) return `"${value}" is longer than 253 characters`;
  const labels = value.split('.');
  if (!labels.every((l) => K8S_LABEL.test(l))) {
    return `"${value}" is not a valid name: use lower case letters, digits, "-" and ".", starting and ending with a letter or digit`;
  }
  return undefined;
}

/** A Kubernetes namespace (DNS-1123 label): lower case, at most 63 characters. */
export function namespaceName(value: string): string | undefined {
  if (value === '') return 'must not be empty';
  if (value.length > 63) return `"${value}" is longer than 63 characters`;
  if (!K8S_LABEL.test(value)) {
    return `"${value}" is not a valid namespace: use lower case letters, digits and "-", starting and ending with a letter or digit`;
  }
  return undefined;
}

/** Istio's DNS-1123 label (subset names, port names, gateway references). */
export function dnsLabel(value: string, what: string): string | undefined {
  if (value === '') return `${what} must not be empty`;
  if (value.length > 63) return `${what} "${value}" is longer than 63 characters`;
  if (!DNS_LABEL.test(value)) return `${what} "${value}" is not a valid DNS label: ${LABEL_HINT}`;
  return undefined;
}

function hostPreconditions(host: string): string | undefined {
  if (host === '') return 'host must not be empty';
  if (host.length > 255) return `host "${host}" is longer than 255 characters`;
  return undefined;
}

/** The labels after the first one: valid DNS labels, a trailing dot allowed, the top-level domain not all digits. */
function hostLabels(host: string, rest: string): string | undefined {
  const labels = rest.split('.');
  const tld = labels[labels.length - 1]!;
  if (/^\d+$/.test(tld)) return `invalid host "${host}": the top-level domain "${tld}" cannot be all digits`;
  for (const [i, label] of labels.entries()) {
    if (i === labels.length - 1 && label === '' && labels.length > 1) return undefined;
    if (label.includes('*'))
      return `invalid host "${host}": a wildcard is only allowed as the first label ("*.example.com")`;
    if (!DNS_LABEL.test(label) || label.length > 63) {
      return `invalid host "${host}": label "${label}" is not a valid DNS label (${LABEL_HINT})`;
    }
  }
  return undefined;
}

/** A fully qualified (or short) DNS name without wildcards (Istio's ValidateFQDN). */
export function fqdn(host: string): string | undefined {
  const pre = hostPreconditions(host);
  if (pre) return pre;
  return hostLabels(host, host);
}

/**
 * A DNS name that may start with a wildcard label: `reviews`,
 * `reviews.default.svc.cluster.local`, `*.example.com`, `*` (Istio's ValidateWildcardDomain).
 */
export function wildcardHost(host: string): string | undefined {
  const pre = hostPreconditions(host);
  if (pre) return pre;
  const dot = host.indexOf('.');
  const first = dot < 0 ? host : host.slice(0, dot);
  if (!WILDCARD_LABEL.test(first) || first.length > 63) {
    if (first.includes('*'))
      return `invalid host "${host}": a wildcard must be the whole first label ("*.example.com") or a prefix of it`;
    return `invalid host "${host}": label "${first}" is not a valid DNS label (${LABEL_HINT})`;
  }
  return dot < 0 ? undefined : hostLabels(host, host.slice(dot + 1));
}

/** Istio warns about `*foo.example.com`: only a whole-label wildcard matches as users expect. */
export function partialWildcard(host: string): string | undefined {
  if (host.startsWith('*') && host !== '*' && !host.startsWith('*.')) {
    return `partial wildcard "${host}" is not supported by Envoy's matching; use "*.${host.slice(1)}"`;
  }
  return undefined;
}

/**
 * A host in a Gateway server (`namespace/host`, `./host`, `*\/host` or a bare
 * host) or in a Sidecar egress listener (`namespace/host` only, `~` allowed).
 */
export function namespacedHost(value: string, where: 'gateway' | 'sidecar'): string | undefined {
  const slash = value.indexOf('/');
  if (slash < 0) {
    if (where === 'gateway') return wildcardHost(value);
    return `"${value}" must be of the form namespace/host, like "./reviews.default.svc.cluster.local", "istio-system/*" or "*/*"`;
  }
  const ns = value.slice(0, slash);
  const host = value.slice(slash + 1);
  if (ns === '' || host === '') return `"${value}": namespace and host must not be empty`;
  const special = where === 'gateway' ? ['*', '.'] : ['*', '.', '~'];
  if (!special.includes(ns)) {
    const reason = dnsLabel(ns, 'namespace');
    if (reason) return `"${value}": ${reason}`;
  }
  if (host === '*') return undefined;
  return wildcardHost(host);
}

/** Does wildcard-aware host `a` match `b` (either way)? Istio's host.Name.Matches. */
export function hostsOverlap(a: string, b: string): boolean {
  const wa = a.startsWith('*');
  const wb = b.startsWith('*');
  if (wa && wb) {
    const sa = a.slice(1);
    const sb = b.slice(1);
    return sa.length < sb.length ? sb.endsWith(sa) : sa.endsWith(sb);
  }
  if (wa) return b.endsWith(a.slice(1));
  if (wb) return a.endsWith(b.slice(1));
  return a === b;
}

/** Is host `inner` contained in `outer` (equal, or matched by its wildcard)? Istio's host.Name.SubsetOf. */
export function hostSubsetOf(inner: string, outer: string): boolean {
  if (outer.startsWith('*')) {
    if (inner.startsWith('*')) return inner.slice(1).endsWith(outer.slice(1));
    return inner.endsWith(outer.slice(1));
  }
  return inner === outer;
}

export function isIP(value: string): boolean {
  return net.isIP(value) !== 0;
}

/** An IP address or CIDR block (`10.0.0.1`, `10.0.0.0/8`, `2001:db8::/32`). */
export function ipOrCidr(value: string): string | undefined {
  const slash = value.indexOf('/');
  const ip = slash < 0 ? value : value.slice(0, slash);
  const version = net.isIP(ip);
  if (version === 0) return `"${value}" is not a valid IP address or CIDR block`;
  if (slash >= 0) {
    const bits = value.slice(slash + 1);
    const max = version === 4 ? 32 : 128;
    if (!/^\d+$/.test(bits) || Number(bits) > max)
      return `"${value}" has an invalid prefix length (0-${max})`;
  }
  return undefined;
}

/** A bind address: an IP address. */
export function ipAddress(value: string): string | undefined {
  return isIP(value) ? undefined : `"${value}" is not a valid IP address`;
}

/** A `unix://` socket path: absolute, or abstract (`@name`). */
export function unixAddress(value: string): string | undefined {
  const path = value.slice('unix://'.length);
  if (path === '') return 'unix address must not be empty';
  if (path.startsWith('@')) return undefined;
  if (!path.startsWith('/') || path.endsWith('/')) return `"${path}" is not an absolute path to a file`;
  return undefined;
}

/** A Kubernetes label key: an optional DNS subdomain prefix and `/`, then a name of at most 63 characters. */
export function labelKey(key: string): string | undefined {
  if (key === '') return 'label key must not be empty';
  if (key.includes('*')) return `wildcards are not supported in label keys ("${key}")`;
  const parts = key.split('/');
  if (parts.length > 2) return `invalid label key "${key}": at most one "/" is allowed`;
  const name = parts[parts.length - 1]!;
  if (parts.length === 2) {
    const prefix = parts[0]!;
    if (prefix === '' || prefix.length > 253 || !prefix.split('.').every((l) => K8S_LABEL.test(l))) {
      return `invalid label key "${key}": the prefix "${prefix}" must be a lower case DNS name`;
    }
  }
  if (name.length > 63) return `invalid label key "${key}": the name is longer than 63 characters`;
  if (!QUALIFIED_NAME.test(name)) {
    return `invalid label key "${key}": use letters, digits, "-", "_" and ".", starting and ending with a letter or digit`;
  }
  return undefined;
}

/** A Kubernetes label value: empty, or at most 63 characters of letters, digits, `-`, `_`, `.`. */
export function labelValue(value: string): string | undefined {
  if (value === '') return undefined;
  if (value.includes('*')) return `wildcards are not supported in label values ("${value}")`;
  if (value.length > 63) return `invalid label value "${value}": longer than 63 characters`;
  if (!QUALIFIED_NAME.test(value)) {
    return `invalid label value "${value}": use letters, digits, "-", "_" and ".", starting and ending with a letter or digit`;
  }
  return undefined;
}

const HEADER_NAME = /^[-_A-Za-z0-9]+$/;

/** A header name in a match (Istio allows `@request.auth.claims.*` pseudo-headers at gateways). */
export function headerName(name: string): string | undefined {
  if (name === '') return 'header name must not be empty';
  if (name.startsWith('@request.auth.claims.') && name.length > '@request.auth.claims.'.length)
    return undefined;
  if (!HEADER_NAME.test(name)) return `"${name}" is not a valid header name (letters, digits, "-" and "_")`;
  return undefined;
}

/** An `exportTo` list: `.`, `*`, namespaces (and `~` for ServiceEntry), no duplicates, `*` alone. */
export function exportToProblems(list: readonly string[], namespace: string, allowNone: boolean): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const entry of list) {
    const key = entry === '.' ? namespace : entry;
    if (seen.has(key)) {
      const viaDot = entry === '.' || (key === namespace && list.includes('.'));
      problems.push(viaDot ? `"." and "${namespace}" are the same namespace` : `duplicate entry "${entry}"`);
      continue;
    }
    seen.add(key);
    if (entry === '.' || entry === '*' || (allowNone && entry === '~')) continue;
    const reason = namespaceName(entry);
    if (reason) problems.push(`${reason} (use ".", "*"${allowNone ? ', "~"' : ''} or a namespace)`);
  }
  if (seen.has('*') && list.length > 1)
    problems.push('"*" exports to every namespace and cannot be combined with other entries');
  if (seen.has('~') && list.length > 1)
    problems.push('"~" exports to no namespace and cannot be combined with other entries');
  return problems;
}
