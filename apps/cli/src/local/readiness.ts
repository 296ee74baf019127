import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';

interface SyncEntry {
  proxy: string;
  sync?: Record<string, string>;
  errors?: Record<string, string>;
}

/** Polls until `check` resolves true or the deadline passes; returns the last reason it was not ready. */
export async function waitUntil(
  what: string,
  timeoutMs: number,
  check: () => Promise<true | string>,
  shouldStop: () => boolean = () => false,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last = 'not checked yet';
  while (Date.now() < deadline) {
    if (shouldStop()) throw new Error(`stopped while waiting for ${what}`);
    try {
      const result = await check();
      if (result === true) return;
      last = result;
    } catch (err) {
      last = (err as Error).message;
    }
    await sleep(200);
  }
  throw new Error(`timed out after ${Math.round(timeoutMs / 1000)}s waiting for ${what}: ${last}`);
}

/** A bounded GET (undici, not fetch: fetch refuses some ports a user may pick). */
async function get(url: string, timeoutMs: number): Promise<{ status: number; body: string }> {
  const res = await request(url, { headersTimeout: timeoutMs, bodyTimeout: timeoutMs });
  return { status: res.statusCode, body: await res.body.text() };
}

/** True when citadel answers /ready (its root is loaded and the CA serves). */
export async function citadelReady(base: string): Promise<true | string> {
  const res = await get(`${base}/ready`, 2000);
  return res.status === 200 ? true : `citadel answered ${res.status}`;
}

/** True when pilot answers /ready. */
export async function pilotReady(base: string): Promise<true | string> {
  const res = await get(`${base}/ready`, 2000);
  return res.status === 200 ? true : `pilot answered ${res.status}`;
}

const TYPES = ['CDS', 'EDS', 'LDS', 'RDS'];

/** True when every expected proxy is connected and has ACKed every resource type. */
export async function proxiesSynced(base: string, expected: readonly string[]): Promise<true | string> {
  const entries = JSON.parse((await get(`${base}/debug/syncz`, 2000)).body) as SyncEntry[];
  const byId = new Map(entries.map((e) => [e.proxy, e]));
  for (const id of expected) {
    const e = byId.get(id);
    if (!e) return `${id} has not connected`;
    for (const t of TYPES) {
      if (e.errors?.[t]) return `${id} rejected ${t}: ${e.errors[t]}`;
      if (e.sync?.[t] !== 'ACKED') return `${id} has ${t} ${e.sync?.[t] ?? 'not sent'}`;
    }
  }
  return true;
}

/** True when productpage answers 200 through the ingress gateway. */
export async function productpageServes(ingress: string): Promise<true | string> {
  const res = await get(`${ingress}/productpage`, 3000);
  return res.status === 200 ? true : `GET ${ingress}/productpage answered ${res.status}`;
}

/** True when productpage answers 200 over HTTPS at the ingress for `host`, its certificate verified against `ca`. */
export function productpageServesOverTls(
  address: string,
  port: number,
  host: string,
  ca: string,
): Promise<true | string> {
  return new Promise((resolve) => {
    const req = https.get(
      {
        host: address,
        port,
        servername: host,
        headers: { host },
        path: '/productpage',
        ca,
        agent: false,
        timeout: 3000,
      },
      (res) => {
        res.resume();
        resolve(
          res.statusCode === 200
            ? true
            : `GET https://${host}:${port}/productpage answered ${res.statusCode}`,
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', (err) => resolve(`https://${host}:${port}/productpage: ${err.message}`));
  });
}
