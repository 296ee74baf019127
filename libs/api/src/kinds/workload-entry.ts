import { z } from 'zod';
import type { Checker } from '../validation/checker.js';
import { dnsLabel, fqdn, isIP, unixAddress } from '../validation/names.js';
import { labels, obj, port, str, uint } from '../validation/schema.js';
import type { KindValidation } from './context.js';

// ---------------------------------------------------------------------------
// Types: networking.istio.io WorkloadEntry (v1 == v1beta1 == v1alpha3).
// ---------------------------------------------------------------------------

/** A workload outside Kubernetes (a VM, a process): also the shape of a ServiceEntry endpoint. */
export interface WorkloadEntrySpec {
  /** IP address, host name (DNS resolution) or `unix:///path`. */
  address?: string;
  /** Service port name → the port this workload listens on for it. */
  ports?: Record<string, number>;
  labels?: Record<string, string>;
  network?: string;
  locality?: string;
  weight?: number;
  serviceAccount?: string;
}

/** networking.istio.io WorkloadSelector: picks workloads (pods, WorkloadEntries) by labels. */
export interface WorkloadSelector {
  labels?: Record<string, string>;
}

// ---------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------

export const workloadEntrySchema = obj({
  address: str().optional(),
  ports: z.record(z.string(), port()).optional(),
  labels: labels().optional(),
  network: str().optional(),
  locality: str().optional(),
  weight: uint().optional(),
  serviceAccount: str().optional(),
});

export const workloadSelectorSchema = () => obj({ labels: labels().optional() });

// ---------------------------------------------------------------------------
// Semantic checks (Istio's validateWorkloadEntry)
// ---------------------------------------------------------------------------

export interface WorkloadCheckOptions {
  /** Host names are fine for DNS resolution, not for STATIC. */
  allowHostnames: boolean;
  /** The ServiceEntry's port names, when checking its endpoints. */
  servicePorts?: ReadonlySet<string>;
}

export function checkWorkload(we: WorkloadEntrySpec, at: Checker, opts: WorkloadCheckOptions): void {
  const address = we.address ?? '';
  if (address === '') {
    if (we.network)
      at.at('address').warn(`no address: reachable only through the gateway of network "${we.network}"`);
    else
      at.at('address').error(
        'required field "address" is missing (an IP address, host name or unix:// path)',
      );
  } else if (address.startsWith('unix://')) {
    at.at('address').check(unixAddress(address));
    if (Object.keys(we.ports ?? {}).length) at.at('ports').error('a unix:// endpoint cannot have ports');
    if (opts.servicePorts && opts.servicePorts.size !== 1) {
      at.at('address').error('a unix:// endpoint needs a ServiceEntry with exactly one port');
    }
  } else if (!isIP(address)) {
    if (!opts.allowHostnames)
      at.at('address').error(`"${address}" is not an IP address (needed with resolution STATIC)`);
    else if (fqdn(address)) at.at('address').error(`"${address}" is not a valid IP address or host name`);
  }
  for (const name of Object.keys(we.ports ?? {})) {
    const here = at.at('ports', name);
    here.check(dnsLabel(name, 'port name'));
    if (opts.servicePorts && !opts.servicePorts.has(name)) {
      here.error(
        `port "${name}" is not one of the ServiceEntry's ports (${[...opts.servicePorts].join(', ') || 'none'})`,
      );
    }
  }
}

export const workloadEntry: KindValidation<WorkloadEntrySpec> = {
  schema: workloadEntrySchema,
  check: (spec, at) => checkWorkload(spec, at, { allowHostnames: true }),
};
