import type { ConfigResource, MutualTLSMode, PeerAuthenticationSpec } from '@mizzen/api';
import type { PolicyIssue } from '../common/errors.js';
import {
  byCreationOrder,
  DEFAULT_ROOT_NAMESPACE,
  resourceId,
  type ScopeOptions,
  selectorMatches,
  type Workload,
} from '../common/scope.js';

/** The mTLS mode a port enforces (UNSET is resolved away). */
export type EffectiveMtlsMode = Exclude<MutualTLSMode, 'UNSET'>;

export interface EffectivePeerAuthentication {
  /** The workload-wide mode (ports without a port-level setting). */
  mode: EffectiveMtlsMode;
  /** Port → mode, for the ports a workload-level policy sets (UNSET resolved to `mode`). */
  portLevel: ReadonlyMap<number, EffectiveMtlsMode>;
  /** The ports with their own mode, ascending: each needs its own inbound filter chain. */
  ports: number[];
  /** The policies that decided, by scope (`PeerAuthentication ns/name`). */
  sources: { mesh?: string; namespace?: string; workload?: string };
  issues: PolicyIssue[];
}

function isUnset(mtls: PeerAuthenticationSpec['mtls']): boolean {
  return mtls?.mode === undefined || mtls.mode === 'UNSET';
}

function hasSelector(spec: PeerAuthenticationSpec): boolean {
  return Object.keys(spec.selector?.matchLabels ?? {}).length > 0;
}

/**
 * The PeerAuthentication in effect for a workload, exactly as Istio composes
 * it (ComposePeerAuthentication): a workload-selector policy over the
 * namespace policy over the mesh policy (root namespace, no selector); among
 * policies of the same scope the oldest wins; UNSET inherits from the scope
 * above; portLevelMtls counts only on a workload policy and UNSET there
 * inherits the workload mode; with nothing set the mode is PERMISSIVE.
 */
export function effectivePeerAuthentication(
  resources: readonly ConfigResource[],
  workload: Workload,
  opts: ScopeOptions = {},
): EffectivePeerAuthentication {
  const rootNamespace = opts.rootNamespace ?? DEFAULT_ROOT_NAMESPACE;
  const issues: PolicyIssue[] = [];
  let mesh: ConfigResource<'PeerAuthentication'> | undefined;
  let namespace: ConfigResource<'PeerAuthentication'> | undefined;
  let wl: ConfigResource<'PeerAuthentication'> | undefined;

  const candidates = resources
    .filter(
      (r): r is ConfigResource<'PeerAuthentication'> =>
        r.kind === 'PeerAuthentication' &&
        (r.metadata.namespace === workload.namespace || r.metadata.namespace === rootNamespace),
    )
    .sort(byCreationOrder);
  for (const r of candidates) {
    if (!selectorMatches(r.spec.selector, workload.labels)) continue;
    if (!hasSelector(r.spec)) {
      if (r.metadata.namespace === rootNamespace) mesh ??= r;
      else namespace ??= r;
    } else if (r.metadata.namespace !== rootNamespace) {
      wl ??= r;
    }
  }

  let mode: EffectiveMtlsMode = 'PERMISSIVE';
  for (const r of [mesh, namespace, wl]) {
    if (r && !isUnset(r.spec.mtls)) mode = r.spec.mtls!.mode as EffectiveMtlsMode;
  }

  const portLevel = new Map<number, EffectiveMtlsMode>();
  if (wl?.spec.portLevelMtls) {
    for (const [key, mtls] of Object.entries(wl.spec.portLevelMtls)) {
      const port = /^[0-9]+$/.test(key) ? Number(key) : Number.NaN;
      if (!(port >= 1 && port <= 65535)) {
        issues.push({
          severity: 'error',
          resource: resourceId(wl),
          field: `spec.portLevelMtls["${key}"]`,
          message: `"${key}" is not a port number between 1 and 65535; ignored`,
        });
        continue;
      }
      portLevel.set(port, isUnset(mtls) ? mode : (mtls.mode as EffectiveMtlsMode));
    }
  }
  for (const r of [mesh, namespace]) {
    if (r?.spec.portLevelMtls && Object.keys(r.spec.portLevelMtls).length) {
      issues.push({
        severity: 'warning',
        resource: resourceId(r),
        field: 'spec.portLevelMtls',
        message: 'port-level mTLS needs a workload selector; ignored on a mesh- or namespace-wide policy',
      });
    }
  }

  return {
    mode,
    portLevel,
    ports: [...portLevel.keys()].sort((a, b) => a - b),
    sources: {
      ...(mesh ? { mesh: resourceId(mesh) } : {}),
      ...(namespace ? { namespace: resourceId(namespace) } : {}),
      ...(wl ? { workload: resourceId(wl) } : {}),
    },
    issues,
  };
}

/** The mode for one port of the workload. */
export function mtlsModeForPort(effective: EffectivePeerAuthentication, port: number): EffectiveMtlsMode {
  return effective.portLevel.get(port) ?? effective.mode;
}
