import type { Logger } from '@mizzen/runtime';
import { statusOf } from './informer.js';

/**
 * Missing RBAC permissions for pilot's writes (Leases, CRD status,
 * ConfigMaps), logged once per verb and resource — naming what to grant —
 * however often the write is retried (every retry period, resync or event),
 * and again only after a write of that kind succeeded and was denied later.
 * (The informers log their own denied list/watch the same way.)
 */
export class MissingPermissions {
  private readonly logged = new Set<string>();

  constructor(private readonly logger: Logger) {}

  /**
   * True when `err` is the API server's 403, after logging it unless this
   * verb on this resource was already reported. `context` names the object of
   * the first denial (namespace, lease).
   */
  forbidden(err: unknown, verb: string, resource: string, context: Record<string, unknown> = {}): boolean {
    if (statusOf(err) !== 403) return false;
    const key = `${verb} ${resource}`;
    if (this.logged.has(key)) return true;
    this.logged.add(key);
    this.logger.error(
      { verb, resource, ...context },
      `missing RBAC permission: cannot ${verb} ${resource}; grant "${verb}" on it to pilot's service account (retried quietly until then)`,
    );
    return true;
  }

  /** A write of this kind went through: a later denial is news again. */
  granted(verb: string, resource: string): void {
    this.logged.delete(`${verb} ${resource}`);
  }

  /** What is missing now (`verb resource`), for /debug/kubez. */
  missing(): string[] {
    return [...this.logged].sort();
  }
}
