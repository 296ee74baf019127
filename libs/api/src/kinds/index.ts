import type { Kind, SpecFor } from '../resource.js';
import { authorizationPolicy } from './authorization-policy.js';
import type { KindValidation } from './context.js';
import { destinationRule } from './destination-rule.js';
import { gateway } from './gateway.js';
import { peerAuthentication } from './peer-authentication.js';
import { rateLimitPolicy } from './rate-limit-policy.js';
import { requestAuthentication } from './request-authentication.js';
import { serviceEntry } from './service-entry.js';
import { sidecar } from './sidecar.js';
import { telemetry } from './telemetry.js';
import { virtualService } from './virtual-service.js';
import { workloadEntry } from './workload-entry.js';

/** Each kind's schema and semantic checks. Add a kind here (and to `SpecByKind`) to teach Mizzen about it. */
export const VALIDATION: { [K in Kind]: KindValidation<SpecFor<K>> } = {
  VirtualService: virtualService,
  DestinationRule: destinationRule,
  Gateway: gateway,
  ServiceEntry: serviceEntry,
  WorkloadEntry: workloadEntry,
  Sidecar: sidecar,
  PeerAuthentication: peerAuthentication,
  AuthorizationPolicy: authorizationPolicy,
  RequestAuthentication: requestAuthentication,
  Telemetry: telemetry,
  RateLimitPolicy: rateLimitPolicy,
};
