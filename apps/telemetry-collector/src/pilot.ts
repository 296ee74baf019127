import { type Dispatcher, request } from 'undici';
import type { KnownProxy } from './mesh/graph.js';

/** One proxy as pilot's `/debug/syncz` lists it, with what the collector needs pulled out. */
export interface PilotProxy {
  id: string;
  kind: KnownProxy['kind'] | 'grpc' | 'unknown';
  workload: string;
  namespace: string;
  /** From the node id (`TYPE~IP~POD.NS~NS.svc.cluster.local`). */
  ip: string;
  /** `ports.stats`; absent until the proxy serves `/stats/prometheus`. */
  statsPort?: number;
  sync: Record<string, string>;
  errors?: Record<string, string>;
  entry: Record<string, unknown>;
}

export interface PilotStatus {
  url: string;
  reachable: boolean;
  error?: string;
  lastSuccessMs?: number;
}

/** Reads pilot's debug API (`/debug/syncz`, `/debug/configz`, `/debug/registryz`) with bounded timeouts. */
export class PilotClient {
  private state: PilotStatus;

  constructor(
    readonly url: string,
    private readonly timeoutMs: number,
    private readonly dispatcher: Dispatcher,
    private readonly clock: () => number = Date.now,
  ) {
    this.state = { url, reachable: false, error: 'not contacted yet' };
  }

  status(): PilotStatus {
    return { ...this.state };
  }

  async get(path: string): Promise<unknown> {
    const where = `${this.url.replace(/\/$/, '')}${path}`;
    try {
      const res = await request(where, {
        dispatcher: this.dispatcher,
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      const text = await res.body.text();
      if (res.statusCode !== 200) throw new Error(`HTTP ${res.statusCode}: ${text.slice(0, 200)}`);
      const value = JSON.parse(text) as unknown;
      this.state = { url: this.url, reachable: true, lastSuccessMs: this.clock() };
      return value;
    } catch (err) {
      const e = err as Error & { code?: string };
      const reason =
        e.name === 'TimeoutError' || e.name === 'AbortError'
          ? `no answer within ${this.timeoutMs} ms`
          : e.code === 'ECONNREFUSED'
            ? 'connection refused'
            : e.message;
      this.state = {
        url: this.url,
        reachable: false,
        error: `pilot at ${this.url} (${path}): ${reason}`,
        lastSuccessMs: this.state.lastSuccessMs,
      };
      throw new Error(this.state.error);
    }
  }

  async proxies(): Promise<PilotProxy[]> {
    const body = await this.get('/debug/syncz');
    if (!Array.isArray(body)) throw new Error(`pilot at ${this.url}: /debug/syncz did not return a list`);
    return body.filter((e): e is Record<string, unknown> => !!e && typeof e === 'object').map(parseSyncEntry);
  }
}

function text(v: unknown): string {
  return typeof v === 'string' ? v : '';
}

export function parseSyncEntry(entry: Record<string, unknown>): PilotProxy {
  const id = text(entry.proxy);
  const parts = id.split('~');
  const ip = parts.length === 4 ? parts[1]! : '';
  const podNs = parts.length === 4 ? parts[2]! : '';
  const dot = podNs.lastIndexOf('.');
  const namespace = text(entry.namespace) || (dot > 0 ? podNs.slice(dot + 1) : '');
  const workload = text(entry.workload) || (dot > 0 ? podNs.slice(0, dot) : podNs);
  const type = text(entry.proxy_type);
  const labels = (entry.labels && typeof entry.labels === 'object' ? entry.labels : {}) as Record<
    string,
    string
  >;
  let kind: PilotProxy['kind'] = 'unknown';
  if (type === 'sidecar') kind = 'sidecar';
  else if (type === 'grpc') kind = 'grpc';
  else if (type === 'router' || type === 'ingress' || type === 'egress') {
    kind =
      type === 'egress' || labels.istio === 'egressgateway' || workload.includes('egress')
        ? 'egress'
        : 'ingress';
  }
  const ports = (entry.ports && typeof entry.ports === 'object' ? entry.ports : {}) as Record<
    string,
    unknown
  >;
  const stats = Number(ports.stats);
  const proxy: PilotProxy = {
    id,
    kind,
    workload,
    namespace,
    ip,
    sync: (entry.sync && typeof entry.sync === 'object' ? entry.sync : {}) as Record<string, string>,
    entry,
  };
  if (Number.isInteger(stats) && stats > 0 && stats < 65536) proxy.statsPort = stats;
  if (entry.errors && typeof entry.errors === 'object') proxy.errors = entry.errors as Record<string, string>;
  return proxy;
}

/** Where to scrape a proxy: its node IP (loopback when it has none) and its stats port. */
export function statsUrl(proxy: PilotProxy): string | undefined {
  if (!proxy.statsPort) return undefined;
  let host = proxy.ip;
  if (!host || host === '0.0.0.0' || host === '::') host = '127.0.0.1';
  if (host.includes(':')) host = `[${host}]`;
  return `http://${host}:${proxy.statsPort}/stats/prometheus`;
}
