import { z } from 'zod';
import type { Checker } from '../validation/checker.js';
import { obj } from '../validation/schema.js';
import type { KindValidation } from './context.js';
import { type LabelSelector, labelSelectorSchema } from './selectors.js';

// ---------------------------------------------------------------------------
// Types: security.istio.io PeerAuthentication (v1 == v1beta1).
// ---------------------------------------------------------------------------

export type MutualTLSMode = 'UNSET' | 'DISABLE' | 'PERMISSIVE' | 'STRICT';

export interface PeerAuthenticationMutualTLS {
  mode?: MutualTLSMode;
}

export interface PeerAuthenticationSpec {
  selector?: LabelSelector;
  mtls?: PeerAuthenticationMutualTLS;
  /** Port number (as a string key) → mTLS mode for that port; needs a selector. */
  portLevelMtls?: Record<string, PeerAuthenticationMutualTLS>;
}

// ---------------------------------------------------------------------------
// Schema
// ---------------------------------------------------------------------------

const mtls = () => obj({ mode: z.enum(['UNSET', 'DISABLE', 'PERMISSIVE', 'STRICT']).optional() });

export const peerAuthenticationSchema = obj({
  selector: labelSelectorSchema().optional(),
  mtls: mtls().optional(),
  portLevelMtls: z.record(z.string(), mtls()).optional(),
});

// ---------------------------------------------------------------------------
// Semantic checks (Istio's ValidatePeerAuthentication)
// ---------------------------------------------------------------------------

function checkPeerAuthentication(spec: PeerAuthenticationSpec, at: Checker): void {
  const selectorLabels = spec.selector?.matchLabels ?? {};
  if (spec.selector && Object.keys(selectorLabels).length === 0) {
    at.at('selector').warn(
      'the selector has no labels, so this policy applies to every workload in the namespace',
    );
  }
  const ports = spec.portLevelMtls;
  if (ports === undefined) return;
  if (Object.keys(selectorLabels).length === 0) {
    at.at('portLevelMtls').error(
      'port-level mTLS needs a selector with matchLabels (mesh- and namespace-wide policies cannot set it)',
    );
  }
  if (Object.keys(ports).length === 0) at.at('portLevelMtls').error('if set, it must list at least one port');
  for (const key of Object.keys(ports)) {
    if (!/^\d+$/.test(key) || Number(key) < 1 || Number(key) > 65535) {
      at.at('portLevelMtls', key).error(`"${key}" is not a port number between 1 and 65535`);
    }
  }
}

export const peerAuthentication: KindValidation<PeerAuthenticationSpec> = {
  schema: peerAuthenticationSchema,
  check: checkPeerAuthentication,
};
