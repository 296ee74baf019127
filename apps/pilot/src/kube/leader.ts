import { CoordinationV1Api, type KubeConfig, type V1Lease } from '@kubernetes/client-node';
import type { Logger } from '@mizzen/runtime';
import { statusOf } from './informer.js';
import { MissingPermissions } from './permissions.js';

const LEASES = 'leases.coordination.k8s.io';
type LeaseVerb = 'get' | 'create' | 'update';

export interface LeaderElectionOptions {
  kubeConfig: KubeConfig;
  logger: Logger;
  namespace: string;
  /** The Lease's name (Istio's istiod uses `istio-leader`). */
  name: string;
  /** This replica's identity: the pod name, plus a suffix that tells restarts apart. */
  identity: string;
  /** How long a lease holds without renewal (client-go default 15s). */
  leaseDurationMs?: number;
  /** A leader that could not renew for this long steps down (10s). */
  renewDeadlineMs?: number;
  /** How often candidates try and the leader renews (2s). */
  retryPeriodMs?: number;
  onStartedLeading?: () => void;
  onStoppedLeading?: () => void;
  /** Where denied Lease requests are reported (once per verb); shared with the controller's other writers. */
  permissions?: MissingPermissions;
}

/**
 * Leader election through a coordination.k8s.io/v1 Lease, as client-go's
 * leaderelection does it: the holder renews `renewTime` every retry period
 * with an optimistic-concurrency update (resourceVersion); others take over
 * only after they have seen the same record unchanged for a whole lease
 * duration (measured on their own clock, so clock skew between nodes does not
 * matter); a leader that cannot renew within the renew deadline stops leading;
 * `stop()` releases the lease so a successor need not wait.
 */
export class LeaderElection {
  private readonly api: CoordinationV1Api;
  private leading = false;
  private stopped = true;
  private timer?: NodeJS.Timeout;
  /** The record last observed, and when (local clock). */
  private observed?: { key: string; at: number };
  private lastRenew = 0;
  private readonly leaseDurationMs: number;
  private readonly renewDeadlineMs: number;
  private readonly retryPeriodMs: number;
  private tick?: Promise<void>;
  private readonly permissions: MissingPermissions;

  constructor(private readonly options: LeaderElectionOptions) {
    this.api = options.kubeConfig.makeApiClient(CoordinationV1Api);
    this.permissions = options.permissions ?? new MissingPermissions(options.logger);
    this.leaseDurationMs = options.leaseDurationMs ?? 15_000;
    this.renewDeadlineMs = options.renewDeadlineMs ?? 10_000;
    this.retryPeriodMs = options.retryPeriodMs ?? 2_000;
  }

  get identity(): string {
    return this.options.identity;
  }

  isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.schedule(0);
  }

  /** Stops campaigning; a leader releases the lease. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.tick;
    if (this.leading) {
      this.setLeading(false);
      await this.release();
    }
  }

  private schedule(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.tick = this.tryAcquireOrRenew()
        .catch((err: unknown) => {
          const verb = (err as { leaseVerb?: LeaseVerb }).leaseVerb ?? 'get';
          if (this.permissions.forbidden(err, verb, LEASES, { lease: this.leaseRef() })) return;
          this.options.logger.warn(
            { lease: this.leaseRef(), status: statusOf(err), err: (err as Error).message },
            'leader election request failed',
          );
        })
        .finally(() => {
          if (this.leading && Date.now() - this.lastRenew > this.renewDeadlineMs) {
            this.options.logger.warn({ lease: this.leaseRef() }, 'could not renew the lease in time');
            this.setLeading(false);
          }
          this.schedule(this.retryPeriodMs);
        });
    }, ms);
  }

  private leaseRef(): string {
    return `${this.options.namespace}/${this.options.name}`;
  }

  /** One Lease request; a failure carries its verb, so a denial names the permission missing. */
  private async request<T>(verb: LeaseVerb, call: () => Promise<T>): Promise<T> {
    try {
      const result = await call();
      this.permissions.granted(verb, LEASES);
      return result;
    } catch (err) {
      if (err && typeof err === 'object') Object.assign(err, { leaseVerb: verb });
      throw err;
    }
  }

  private async get(): Promise<V1Lease | undefined> {
    try {
      return await this.request('get', () =>
        this.api.readNamespacedLease({ name: this.options.name, namespace: this.options.namespace }),
      );
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  }

  private async tryAcquireOrRenew(): Promise<void> {
    const now = new Date();
    const lease = await this.get();
    const seconds = Math.max(1, Math.round(this.leaseDurationMs / 1000));
    if (!lease) {
      try {
        await this.request('create', () =>
          this.api.createNamespacedLease({
            namespace: this.options.namespace,
            body: {
              apiVersion: 'coordination.k8s.io/v1',
              kind: 'Lease',
              metadata: { name: this.options.name, namespace: this.options.namespace },
              spec: {
                holderIdentity: this.options.identity,
                leaseDurationSeconds: seconds,
                acquireTime: now,
                renewTime: now,
                leaseTransitions: 0,
              },
            },
          }),
        );
        this.renewed();
      } catch (err) {
        if (statusOf(err) !== 409) throw err; // someone else created it first
      }
      return;
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const key = `${holder}|${String(spec.renewTime)}|${lease.metadata?.resourceVersion}`;
    if (this.observed?.key !== key) this.observed = { key, at: Date.now() };
    const held = holder !== '' && holder !== this.options.identity;
    const durationMs = (spec.leaseDurationSeconds ?? seconds) * 1000;
    if (held && Date.now() - this.observed.at < durationMs) {
      if (this.leading) this.setLeading(false);
      return;
    }
    const mine = holder === this.options.identity;
    try {
      await this.request('update', () =>
        this.api.replaceNamespacedLease({
          name: this.options.name,
          namespace: this.options.namespace,
          body: {
            ...lease,
            spec: {
              ...spec,
              holderIdentity: this.options.identity,
              leaseDurationSeconds: seconds,
              acquireTime: mine ? spec.acquireTime : now,
              renewTime: now,
              leaseTransitions: mine ? (spec.leaseTransitions ?? 0) : (spec.leaseTransitions ?? 0) + 1,
            },
          },
        }),
      );
      this.renewed();
    } catch (err) {
      if (statusOf(err) !== 409) throw err; // lost a race: try again next period
    }
  }

  private renewed(): void {
    this.lastRenew = Date.now();
    if (!this.leading) {
      this.options.logger.info({ lease: this.leaseRef(), identity: this.options.identity }, 'became leader');
      this.setLeading(true);
    }
  }

  private setLeading(leading: boolean): void {
    if (this.leading === leading) return;
    this.leading = leading;
    if (leading) this.options.onStartedLeading?.();
    else {
      this.options.logger.info(
        { lease: this.leaseRef(), identity: this.options.identity },
        'stopped leading',
      );
      this.options.onStoppedLeading?.();
    }
  }

  private async release(): Promise<void> {
    try {
      const lease = await this.get();
      if (!lease || lease.spec?.holderIdentity !== this.options.identity) return;
      await this.api.replaceNamespacedLease({
        name: this.options.name,
        namespace: this.options.namespace,
        body: {
          ...lease,
          spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: new Date() },
        },
      });
    } catch (err) {
      this.options.logger.warn(
        { lease: this.leaseRef(), err: (err as Error).message },
        'lease release failed',
      );
    }
  }
}
