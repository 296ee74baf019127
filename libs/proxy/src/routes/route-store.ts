import type { RouteTable } from '../config/route-table.js';
import type { RouteTables } from '../http/connection-manager.js';

/**
 * Route tables received over RDS. Tables named in a response replace what was
 * there; others are kept until no listener needs them (state of the world for
 * a non-wildcard type). Requests to a listener still waiting for its table
 * wait here instead of failing.
 */
export class RouteStore implements RouteTables {
  private readonly tables = new Map<string, RouteTable>();
  private readonly waiters = new Map<string, Set<(t: RouteTable) => void>>();

  get(name: string): RouteTable | undefined {
    return this.tables.get(name);
  }

  wait(name: string, timeoutMs: number): Promise<RouteTable | undefined> {
    const now = this.tables.get(name);
    if (now) return Promise.resolve(now);
    return new Promise((resolve) => {
      const set = this.waiters.get(name) ?? new Set();
      this.waiters.set(name, set);
      const done = (t: RouteTable | undefined) => {
        clearTimeout(timer);
        set.delete(done as (t: RouteTable) => void);
        resolve(t);
      };
      const timer = setTimeout(() => done(undefined), timeoutMs);
      set.add(done as (t: RouteTable) => void);
    });
  }

  apply(tables: readonly RouteTable[]): void {
    for (const t of tables) {
      this.tables.set(t.name, t);
      for (const w of [...(this.waiters.get(t.name) ?? [])]) w(t);
    }
  }

  /** Forgets tables no listener references any more. */
  retainOnly(names: readonly string[]): void {
    const keep = new Set(names);
    for (const name of this.tables.keys()) if (!keep.has(name)) this.tables.delete(name);
  }

  has(name: string): boolean {
    return this.tables.has(name);
  }

  list(): RouteTable[] {
    return [...this.tables.values()];
  }
}
