import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import type { ConfigResource, SpecByKind } from '../src/index.js';
import type { authorizationPolicySchema } from '../src/kinds/authorization-policy.js';
import type { destinationRuleSchema } from '../src/kinds/destination-rule.js';
import type { gatewaySchema } from '../src/kinds/gateway.js';
import type { peerAuthenticationSchema } from '../src/kinds/peer-authentication.js';
import type { rateLimitPolicySchema } from '../src/kinds/rate-limit-policy.js';
import type { requestAuthenticationSchema } from '../src/kinds/request-authentication.js';
import type { serviceEntrySchema } from '../src/kinds/service-entry.js';
import type { sidecarSchema } from '../src/kinds/sidecar.js';
import type { telemetrySchema } from '../src/kinds/telemetry.js';
import type { virtualServiceSchema } from '../src/kinds/virtual-service.js';
import type { workloadEntrySchema } from '../src/kinds/workload-entry.js';

/**
 * Compile-time checks (run by `tsc -p tsconfig.json`, i.e. lint): every
 * kind's zod schema describes exactly its hand-written spec type — same
 * fields, same nesting — so the types pilot uses cannot drift from what is
 * validated.
 */

/** Every field made required, recursively, so a missing field is a type error both ways. */
type Deep<T> = T extends (infer U)[]
  ? Deep<U>[]
  : T extends object
    ? { [K in keyof T]-?: Deep<Exclude<T[K], undefined>> }
    : T;

type Same<A, B> = [Deep<A>] extends [Deep<B>] ? ([Deep<B>] extends [Deep<A>] ? true : false) : false;

interface Schemas {
  VirtualService: typeof virtualServiceSchema;
  DestinationRule: typeof destinationRuleSchema;
  Gateway: typeof gatewaySchema;
  ServiceEntry: typeof serviceEntrySchema;
  WorkloadEntry: typeof workloadEntrySchema;
  Sidecar: typeof sidecarSchema;
  PeerAuthentication: typeof peerAuthenticationSchema;
  AuthorizationPolicy: typeof authorizationPolicySchema;
  RequestAuthentication: typeof requestAuthenticationSchema;
  Telemetry: typeof telemetrySchema;
  RateLimitPolicy: typeof rateLimitPolicySchema;
}

type Checks = {
  [K in keyof SpecByKind]: Same<z.output<Schemas[K]>, SpecByKind[K]>;
};

const allSame: { [K in keyof SpecByKind]: true } = {} as Checks;

// `ConfigResource` narrows by kind.
function specOf(r: ConfigResource): string | undefined {
  if (r.kind === 'DestinationRule') return r.spec.host;
  if (r.kind === 'WorkloadEntry') return r.spec.address;
  return undefined;
}

describe('types', () => {
  it('spec types and schemas agree (checked by tsc)', () => {
    expect(allSame).toBeDefined();
    expect(
      specOf({
        apiVersion: 'networking.istio.io/v1',
        kind: 'DestinationRule',
        metadata: { name: 'r', namespace: 'd' },
        spec: { host: 'h' },
      }),
    ).toBe('h');
  });
});
