import { z } from 'zod';
import type { Checker } from '../validation/checker.js';
import {
  checkExportTo,
  checkSelectorNotEmpty,
  isHttpProtocol,
  isTlsProtocol,
  protocolProblem,
} from '../validation/common.js';
import { dnsLabel, fqdn, ipOrCidr, partialWildcard, wildcardHost } from '../validation/names.js';
import { obj, port, str, strings } from '../validation/schema.js';
import type { KindValidation } from './context.js';
import {
  checkWorkload,
  type WorkloadEntrySpec,
  type WorkloadSelector,
  workloadEntrySchema,
  workloadSelectorSchema,
} from './workload-entry.js';

// ---------------------------------------------------------------------------
// Types: networking.istio.io ServiceEntry (v1 == v1beta1 == v1alpha3).
// ---------------------------------------------------------------------------

export type ServiceEntryResolution = 'NONE' | 'STATIC' | 'DNS' | 'DNS_ROUND_ROBIN' | 'DYNAMIC_DNS';
export type ServiceEntryLocation = 'MESH_EXTERNAL' | 'MESH_INTERNAL';

export interface ServicePort {
  number: number;
  protocol?: string;
  name: string;
  targetPort?: number;
}

export interface ServiceEntrySpec {
  hosts: string[];
  addresses?: string[];
  ports?: ServicePort[];
  location?: ServiceEntryLocation;
  resolution?: ServiceEntryResolution;
  /** Inline endpoints (exclusive with workloadSelector). */
  endpoints?: WorkloadEntrySpec[];
  /** Selects WorkloadEntries (and pods) as endpoints (exclusive with endpoints). */
  workloadSelector?: WorkloadSelector;
  exportTo?: string[];
  subjectAltNames?: string[];
}

// ---------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------

export const serviceEntrySchema = obj({
  hosts: strings(),
  addresses: strings().optional(),
  ports: z
    .array(obj({ number: port(), protocol: str().optional(), name: str(), targetPort: port().optional() }))
    .optional(),
  location: z.enum(['MESH_EXTERNAL', 'MESH_INTERNAL']).optional(),
  resolution: z.enum(['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN', 'DYNAMIC_DNS']).optional(),
  endpoints: z.array(workloadEntrySchema).optional(),
  workloadSelector: workloadSelectorSchema().optional(),
  exportTo: strings().optional(),
  subjectAltNames: strings().optional(),
});

// ---------------------------------------------------------------------------
// Semantic checks (Istio's ValidateServiceEntry)
// ---------------------------------------------------------------------------

function checkServiceEntry(spec: ServiceEntrySpec, at: Checker, ctx: { namespace: string }): void {
  const resolution = spec.resolution ?? 'NONE';
  if (spec.workloadSelector) {
    checkSelectorNotEmpty(spec.workloadSelector.labels ?? {}, at.at('workloadSelector'), 'ServiceEntry');
    if (spec.endpoints !== undefined)
      at.at('endpoints').error('only one of workloadSelector or endpoints may be set');
  }

  if (spec.hosts.length === 0) at.at('hosts').error('at least one host is required');
  for (const [i, host] of spec.hosts.entries()) {
    const here = at.at('hosts', i);
    if (host === '*') {
      here.error(
        '"*" is not allowed in a ServiceEntry; name the hosts (wildcards like "*.example.com" are fine)',
      );
      continue;
    }
    if (here.check(wildcardHost(host))) {
      const partial = partialWildcard(host);
      if (partial) here.warn(partial);
    }
  }

  let cidr = false;
  for (const [i, address] of (spec.addresses ?? []).entries()) {
    cidr ||= address.includes('/');
    at.at('addresses', i).check(ipOrCidr(address));
  }
  if (cidr && resolution !== 'NONE' && resolution !== 'STATIC') {
    at.at('addresses').error(`CIDR addresses need resolution NONE or STATIC, not ${resolution}`);
  }

  const names = new Set<string>();
  const numbers = new Set<number>();
  for (const [i, p] of (spec.ports ?? []).entries()) {
    const here = at.at('ports', i);
    if (here.at('name').check(dnsLabel(p.name, 'port name')) && names.has(p.name)) {
      here.at('name').error(`port name "${p.name}" is already used`);
    }
    if (numbers.has(p.number)) here.at('number').error(`port ${p.number} is already defined`);
    names.add(p.name);
    numbers.add(p.number);
    here.at('protocol').check(protocolProblem(p.protocol));
    if (p.targetPort !== undefined && resolution === 'NONE') {
      here.at('targetPort').warn('targetPort has no effect with resolution NONE');
    }
  }

  const endpoints = spec.endpoints ?? [];
  switch (resolution) {
    case 'NONE':
      if (endpoints.length)
        at.at('endpoints').error(
          'resolution NONE forwards to the original destination, so endpoints cannot be given',
        );
      if (spec.workloadSelector)
        at.at('workloadSelector').warn('workloadSelector has no effect with resolution NONE');
      break;
    case 'STATIC':
      for (const [i, e] of endpoints.entries()) {
        checkWorkload(e, at.at('endpoints', i), { allowHostnames: false, servicePorts: names });
      }
      break;
    case 'DNS':
    case 'DNS_ROUND_ROBIN':
      if (endpoints.length === 0) {
        for (const [i, host] of spec.hosts.entries()) {
          if (host !== '*' && fqdn(host)) {
            at.at('hosts', i).error(
              `with resolution ${resolution} and no endpoints, hosts are resolved by DNS and cannot be wildcards`,
            );
          }
        }
      }
      if (resolution === 'DNS_ROUND_ROBIN' && endpoints.length > 1) {
        at.at('endpoints').error(
          `resolution DNS_ROUND_ROBIN allows at most one endpoint, got ${endpoints.length}`,
        );
      }
      for (const [i, e] of endpoints.entries()) {
        checkWorkload(e, at.at('endpoints', i), { allowHostnames: true, servicePorts: names });
      }
      break;
    case 'DYNAMIC_DNS':
      if (endpoints.length) at.at('endpoints').error('resolution DYNAMIC_DNS cannot have endpoints');
      break;
  }

  // Several hosts on plain TCP ports cannot be told apart (HTTP has Host, TLS has SNI).
  if (resolution !== 'NONE' && spec.hosts.length > 1) {
    const tcp = (spec.ports ?? []).findIndex(
      (p) => !isHttpProtocol(p.protocol) && !isTlsProtocol(p.protocol),
    );
    if (tcp >= 0) {
      at.at('ports', tcp).error('several hosts need HTTP or TLS ports to be told apart (or resolution NONE)');
    }
  }
  checkExportTo(spec.exportTo, ctx.namespace, at, true);
}

export const serviceEntry: KindValidation<ServiceEntrySpec> = {
  schema: serviceEntrySchema,
  check: checkServiceEntry,
};
