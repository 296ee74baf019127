import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import type { JsonObject } from './inject.js';

/** Istio's env var carrying the app probes the injector rewrote, by their new paths. */
export const APP_PROBERS_ENV = 'ISTIO_KUBE_APP_PROBERS';
/** The path prefix kubelet's rewritten probes use on the agent's port 15020. */
export const APP_HEALTH_PREFIX = '/app-health/';

interface HttpProber {
  httpGet: {
    path?: string;
    port: number;
    host?: string;
    scheme?: string;
    httpHeaders?: { name: string; value: string }[];
  };
  timeoutSeconds?: number;
}

interface TcpProber {
  tcpSocket: { port: number; host?: string };
  timeoutSeconds?: number;
}

type Prober = HttpProber | TcpProber;

export interface ProbeResult {
  /** What the agent answers kubelet: 200 when the app's probe passed, else 503 (404 for an unknown path). */
  status: number;
  body: string;
}

export class AppProberError extends Error {}

/** Where the agent runs the probes from. */
export interface AppProberOptions {
  /** The address probes without a `host` go to (Istio's agent: the pod IP); 127.0.0.1 by default. */
  host?: string;
  /**
   * The local address probes connect from: Istio's agent uses 127.0.0.6, which
   * the capture rules never redirect, so a probe of the pod's own IP reaches
   * the app instead of the sidecar's inbound listener.
   */
  localAddress?: string;
}

/**
 * The agent's half of probe rewriting: kubelet asks
 * `/app-health/<container>/<readyz|livez|startupz>` on 15020 and the agent
 * runs the original probe against the application from inside the pod —
 * where the sidecar's capture rules do not apply to it — as Istio's
 * pilot-agent does. HTTP probes pass on 2xx/3xx (kubelet's rule), TCP probes
 * on a completed connect, each within the probe's timeoutSeconds.
 */
export class AppProber {
  private readonly probers: Map<string, Prober>;

  constructor(
    probers: Record<string, JsonObject>,
    private readonly options: AppProberOptions = {},
  ) {
    this.probers = new Map();
    for (const [path, value] of Object.entries(probers)) {
      if (!path.startsWith(APP_HEALTH_PREFIX))
        throw new AppProberError(`${APP_PROBERS_ENV}: "${path}" is not under ${APP_HEALTH_PREFIX}`);
      const p = value as unknown as Partial<HttpProber & TcpProber>;
      if (p.httpGet && Number.isInteger(p.httpGet.port)) this.probers.set(path, p as HttpProber);
      else if (p.tcpSocket && Number.isInteger(p.tcpSocket.port)) this.probers.set(path, p as TcpProber);
      else
        throw new AppProberError(
          `${APP_PROBERS_ENV}: "${path}" has neither an httpGet nor a tcpSocket probe with a numeric port`,
        );
    }
  }

  /** From the env var's JSON (absent or empty: no probes). */
  static fromEnv(value: string | undefined, options: AppProberOptions = {}): AppProber {
    if (!value || value.trim() === '') return new AppProber({}, options);
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch (err) {
      throw new AppProberError(`${APP_PROBERS_ENV} is not JSON: ${(err as Error).message}`);
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
      throw new AppProberError(`${APP_PROBERS_ENV} must be a JSON object of probes by path`);
    return new AppProber(parsed as Record<string, JsonObject>, options);
  }

  paths(): string[] {
    return [...this.probers.keys()];
  }

  /** Runs the probe registered at `path` (the request path kubelet sent). */
  async probe(path: string): Promise<ProbeResult> {
    const prober = this.probers.get(path.split('?')[0]!);
    if (!prober) return { status: 404, body: `no app probe at ${path}` };
    const timeoutMs = Math.max(1, prober.timeoutSeconds ?? 1) * 1000;
    try {
      if ('httpGet' in prober) return await httpProbe(prober.httpGet, timeoutMs, this.options);
      return await tcpProbe(prober.tcpSocket, timeoutMs, this.options);
    } catch (err) {
      return { status: 503, body: `app probe failed: ${(err as Error).message}` };
    }
  }
}

function httpProbe(
  spec: HttpProber['httpGet'],
  timeoutMs: number,
  from: AppProberOptions,
): Promise<ProbeResult> {
  const secure = (spec.scheme ?? 'HTTP').toUpperCase() === 'HTTPS';
  const headers: Record<string, string> = { 'user-agent': 'kube-probe/mizzen-agent' };
  for (const h of spec.httpHeaders ?? []) headers[h.name.toLowerCase()] = h.value;
  const options: https.RequestOptions = {
    host: spec.host ?? from.host ?? '127.0.0.1',
    port: spec.port,
    ...(from.localAddress ? { localAddress: from.localAddress } : {}),
    path: spec.path ?? '/',
    method: 'GET',
    headers,
    timeout: timeoutMs,
    // kubelet does not verify the application's certificate either.
    ...(secure ? { rejectUnauthorized: false } : {}),
  };
  return new Promise((resolve, reject) => {
    const req = (secure ? https : http).request(options, (res) => {
      res.resume();
      const status = res.statusCode ?? 0;
      const ok = status >= 200 && status < 400;
      resolve({ status: ok ? 200 : 503, body: `app answered ${status}` });
    });
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

function tcpProbe(
  spec: TcpProber['tcpSocket'],
  timeoutMs: number,
  options: AppProberOptions,
): Promise<ProbeResult> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({
      host: spec.host ?? options.host ?? '127.0.0.1',
      port: spec.port,
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    });
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no connection within ${timeoutMs} ms`)));
    socket.once('connect', () => {
      socket.destroy();
      resolve({ status: 200, body: `connected to port ${spec.port}` });
    });
    socket.once('error', reject);
  });
}
