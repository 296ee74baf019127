import type { ConfigResource } from '@mizzen/api';

/**
 * Istio's precedence between resources that conflict: the oldest wins
 * (creationTimestamp), then namespace/name order, so every pilot replica
 * picks the same one.
 */
export function byCreation(a: ConfigResource, b: ConfigResource): number {
  const ta = a.metadata.creationTimestamp ?? '';
  const tb = b.metadata.creationTimestamp ?? '';
  if (ta !== tb) return ta < tb ? -1 : 1;
  const ka = `${a.metadata.namespace}/${a.metadata.name}`;
  const kb = `${b.metadata.namespace}/${b.metadata.name}`;
  return ka < kb ? -1 : ka > kb ? 1 : 0;
}
