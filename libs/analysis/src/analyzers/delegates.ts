import type { AnalysisContext } from '../context.js';
import { type AnalysisMessage, msg, originOf } from '../messages.js';

/**
 * IST0101 ReferencedResourceNotFound for a route delegated to a
 * VirtualService that does not exist: pilot ignores the route.
 */
export function analyzeDelegates(ctx: AnalysisContext): AnalysisMessage[] {
  const out: AnalysisMessage[] = [];
  for (const vs of ctx.of('VirtualService')) {
    for (const route of vs.spec.http ?? []) {
      const delegate = route.delegate;
      if (!delegate?.name) continue;
      const namespace = delegate.namespace ?? vs.metadata.namespace;
      if (!ctx.find('VirtualService', namespace, delegate.name))
        out.push(msg.referencedResourceNotFound(originOf(vs), 'delegate', `${namespace}/${delegate.name}`));
    }
  }
  return out;
}
