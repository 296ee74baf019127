import type { RateLimitServices } from '@mizzen/ratelimit';
import type { Logger } from '@mizzen/runtime';
import type { ListenerConfig } from '../../config/listener.js';
import type { HttpFilter } from './filter.js';

/**
 * What some filters need from the running proxy beyond their config: the
 * rate limit counters (Redis or memory) and their metrics, a logger.
 * Filters are compiled from xDS alone (so compiling stays pure and every
 * config can be checked without a process); the proxy then hands these to
 * every filter of the listeners it applies.
 */
export interface FilterServices {
  readonly rateLimits: RateLimitServices;
  readonly logger?: Logger;
}

/** A filter that works with the proxy's services once they are bound (before, with its own defaults). */
export interface ServiceAwareFilter extends HttpFilter {
  bindServices(services: FilterServices): void;
}

function isServiceAware(filter: HttpFilter): filter is ServiceAwareFilter {
  return typeof (filter as Partial<ServiceAwareFilter>).bindServices === 'function';
}

/** Gives every service-aware HTTP filter of these listeners the proxy's services. */
export function bindFilterServices(listeners: readonly ListenerConfig[], services: FilterServices): void {
  for (const listener of listeners) {
    const chains = listener.defaultChain ? [...listener.chains, listener.defaultChain] : listener.chains;
    for (const chain of chains) {
      if (chain.filter.kind !== 'http') continue;
      for (const filter of chain.filter.filters) if (isServiceAware(filter)) filter.bindServices(services);
    }
  }
}
