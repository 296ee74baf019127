import {
  ADD,
  CONNECT,
  DELETE,
  ERROR,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  ListWatch,
  UPDATE,
  Watch,
} from '@kubernetes/client-node';
import type { Logger } from '@mizzen/runtime';

export interface InformerOptions<T extends KubernetesObject> {
  kubeConfig: KubeConfig;
  /** What this informer watches, for logs: `services`, `virtualservices.networking.istio.io`. */
  resource: string;
  /** The watch path: `/api/v1/services`, `/apis/networking.istio.io/v1/virtualservices`. */
  path: string;
  /** One list call (all pages): the typed client-node API call for the resource. */
  list: () => Promise<KubernetesListObject<T>>;
  fieldSelector?: string;
  labelSelector?: string;
  logger: Logger;
  /** Re-delivers every cached object to the handlers this often (client-go's resync); 0 turns it off. */
  resyncMs?: number;
  /** Reconnect back-off after an error: doubles from `initialBackoffMs` up to `maxBackoffMs`. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
}

export type InformerEvent = 'add' | 'update' | 'delete' | 'resync';

export type InformerHandler<T> = (event: InformerEvent, object: T) => void;

/**
 * Waits until every informer has listed once, or `timeoutMs` passed; then
 * names the ones still waiting (missing permission, CRD not installed, API
 * server away) and lets the caller go on with what it has, as they keep
 * retrying in the background. Resolves with the names of those not synced.
 */
export async function waitForSync(
  informers: readonly Pick<Informer<KubernetesObject>, 'synced' | 'hasSynced' | 'resource'>[],
  timeoutMs: number,
  logger: Logger,
): Promise<string[]> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, timeoutMs);
  });
  await Promise.race([Promise.all(informers.map((i) => i.synced())), timeout]);
  clearTimeout(timer);
  const waiting = informers.filter((i) => !i.hasSynced()).map((i) => i.resource);
  if (waiting.length > 0) {
    logger.warn({ waiting }, `starting before these caches synced (still retrying): ${waiting.join(', ')}`);
  }
  return waiting;
}

/** The HTTP status of a client-node error (list calls throw ApiException with `code`, watches set `statusCode`). */
export function statusOf(err: unknown): number | undefined {
  const e = err as { code?: unknown; statusCode?: unknown } | undefined;
  if (typeof e?.statusCode === 'number') return e.statusCode;
  if (typeof e?.code === 'number') return e.code;
  return undefined;
}

/**
 * A shared informer over client-node's ListWatch: list, then watch from the
 * list's resourceVersion, re-watching from the last seen version when the
 * server ends a watch, relisting on 410 Gone (ListWatch does that), and — what
 * ListWatch leaves to its user — restarting with exponential back-off after any
 * other error, plus periodic resync. A 403 (missing RBAC) is logged once per
 * resource, naming what is missing, and retried quietly at the longest back-off.
 */
export class Informer<T extends KubernetesObject> {
  private readonly listWatch: ListWatch<T>;
  private readonly handlers = new Set<InformerHandler<T>>();
  private stopped = true;
  private syncedFlag = false;
  private readonly syncWaiters: (() => void)[] = [];
  private backoffMs: number;
  private retryTimer?: NodeJS.Timeout;
  private resyncTimer?: NodeJS.Timeout;
  private forbiddenLogged = false;
  private lists = 0;
  private watches = 0;

  constructor(private readonly options: InformerOptions<T>) {
    this.backoffMs = options.initialBackoffMs ?? 200;
    const list = async () => {
      const result = await options.list();
      this.lists++;
      // ListWatch adds the listed items synchronously after this promise settles; then it is synced.
      setImmediate(() => this.markSynced());
      return result;
    };
    this.listWatch = new ListWatch<T>(
      options.path,
      new Watch(options.kubeConfig),
      list,
      false,
      options.labelSelector,
      options.fieldSelector,
    );
    this.listWatch.on(ADD, (o) => this.dispatch('add', o));
    this.listWatch.on(UPDATE, (o) => this.dispatch('update', o));
    this.listWatch.on(DELETE, (o) => this.dispatch('delete', o));
    this.listWatch.on(CONNECT, () => {
      this.watches++;
    });
    this.listWatch.on(ERROR, (err) => this.onError(err));
  }

  get resource(): string {
    return this.options.resource;
  }

  /** How many lists and watch (re)connections this informer made: what tests and /debug read. */
  stats(): { lists: number; connects: number; resourceVersion: string; synced: boolean } {
    return {
      lists: this.lists,
      connects: this.watches,
      resourceVersion: this.listWatch.latestResourceVersion(),
      synced: this.syncedFlag,
    };
  }

  on(handler: InformerHandler<T>): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    void this.listWatch.start().catch((err: unknown) => this.onError(err));
    const resync = this.options.resyncMs ?? 0;
    if (resync > 0) {
      this.resyncTimer = setInterval(() => {
        if (!this.syncedFlag) return;
        for (const o of this.listWatch.list()) this.dispatch('resync', o);
      }, resync);
      this.resyncTimer.unref();
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.resyncTimer);
    await this.listWatch.stop();
    for (const w of this.syncWaiters.splice(0)) w();
  }

  /** Resolves after the first complete list (or when stopped). */
  synced(): Promise<void> {
    if (this.syncedFlag || this.stopped) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  hasSynced(): boolean {
    return this.syncedFlag;
  }

  list(namespace?: string): readonly T[] {
    return this.listWatch.list(namespace);
  }

  get(name: string, namespace?: string): T | undefined {
    return this.listWatch.get(name, namespace);
  }

  private markSynced(): void {
    this.backoffMs = this.options.initialBackoffMs ?? 200;
    this.forbiddenLogged = false;
    if (this.syncedFlag) return;
    this.syncedFlag = true;
    for (const w of this.syncWaiters.splice(0)) w();
  }

  private dispatch(event: InformerEvent, object: T): void {
    for (const h of this.handlers) {
      try {
        h(event, object);
      } catch (err) {
        this.options.logger.error(
          { resource: this.options.resource, err: (err as Error).message },
          'informer handler failed',
        );
      }
    }
  }

  private onError(err: unknown): void {
    if (this.stopped) return;
    const status = statusOf(err);
    const max = this.options.maxBackoffMs ?? 30_000;
    if (status === 403 || status === 401 || status === 404) {
      if (!this.forbiddenLogged) {
        this.forbiddenLogged = true;
        this.options.logger.error(
          { resource: this.options.resource, status },
          status === 404
            ? `the API server does not serve ${this.options.resource} (${this.options.path}); is its CustomResourceDefinition installed?`
            : `missing RBAC permission: cannot list/watch ${this.options.resource} (${this.options.path}); grant "list" and "watch" on it to pilot's service account`,
        );
      }
      this.backoffMs = max;
    } else {
      this.options.logger.warn(
        { resource: this.options.resource, status, err: (err as Error)?.message, retryInMs: this.backoffMs },
        'watch failed; reconnecting',
      );
    }
    const wait = Math.round(this.backoffMs * (0.8 + Math.random() * 0.4));
    this.backoffMs = Math.min(max, this.backoffMs * 2);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      if (this.stopped) return;
      void this.listWatch.start().catch((e: unknown) => this.onError(e));
    }, wait);
  }
}
