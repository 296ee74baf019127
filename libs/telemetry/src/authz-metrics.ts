import type { HttpObservation, HttpRequestStart, ProxyObserver } from '@mizzen/proxy';
import { Counter, type Registry } from 'prom-client';

const PREFIX_LABEL = 'envoy_http_conn_manager_prefix';

/**
 * Envoy's RBAC and jwt_authn counters, as a Prometheus scrape of an Istio
 * proxy shows them (`http.<stat_prefix>.rbac.denied` with the prefix
 * extracted into a label): how many requests authorization allowed and
 * denied, and what each istio.io/dry-run policy would have done
 * (`…rbac.istio_dry_run_allow_shadow_denied`) without enforcing it.
 */
export class AuthzMetrics implements ProxyObserver {
  private readonly counters = new Map<string, Counter<string>>();

  constructor(private readonly registry: Registry) {}

  startHttp(start: HttpRequestStart): HttpObservation | undefined {
    const prefix = start.statPrefix ?? start.listener;
    return {
      end: (record) => {
        const authz = record.authz;
        if (!authz) return;
        if (authz.deniedBy === 'jwt') {
          this.count('envoy_http_jwt_authn_denied', prefix);
          return;
        }
        this.count(authz.allowed ? 'envoy_http_rbac_allowed' : 'envoy_http_rbac_denied', prefix);
        for (const d of authz.dryRun) {
          const shadow = d.action === 'DENY' ? 'istio_dry_run_deny_' : 'istio_dry_run_allow_';
          this.count(`envoy_http_rbac_${shadow}shadow_${d.allowed ? 'allowed' : 'denied'}`, prefix);
        }
      },
    };
  }

  private count(name: string, prefix: string): void {
    let counter = this.counters.get(name);
    if (!counter) {
      counter = new Counter({
        name,
        help: `Envoy's ${name.replace(/^envoy_http_/, '').replaceAll('_', ' ')} counter.`,
        labelNames: [PREFIX_LABEL],
        registers: [this.registry],
      });
      this.counters.set(name, counter);
    }
    counter.inc({ [PREFIX_LABEL]: prefix });
  }
}
