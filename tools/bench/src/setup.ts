import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PortAllocator } from '@mizzen/runtime';
import { startApp, stopApps } from './processes.js';

const BODY = JSON.stringify({ service: 'bench', ok: true, padding: 'x'.repeat(200) });

/** What a benchmark run drives: one backend, reachable directly, through one sidecar, and through two. */
export interface BenchTargets {
  backendPort: number;
  /** Client sidecar's outbound port (HTTP proxy); `bench-direct` is the backend with no sidecar, `bench` is behind one. */
  clientProxyPort: number;
  stop: () => Promise<void>;
}

/** The backend: a plain node:http server with a small fixed JSON answer. */
async function startBackend(): Promise<{ port: number; close: () => Promise<void> }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(BODY) });
    res.end(BODY);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function registry(backendPort: number): string {
  return `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: bench-direct, namespace: default }
spec:
  hosts: [bench-direct.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 8080, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, ports: { http: ${backendPort} } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: bench, namespace: default }
spec:
  hosts: [bench.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 8080, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: bench } }
`;
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function viaProxy(proxyPort: number, url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = http.request(
      { host: '127.0.0.1', port: proxyPort, path: url, headers: { host: u.host } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Starts pilot, a backend, a server sidecar in front of it and a client sidecar; resolves when traffic flows. */
export async function startBenchMesh(): Promise<BenchTargets> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-bench-'));
  const backend = await startBackend();
  fs.mkdirSync(path.join(dir, 'config'));
  fs.writeFileSync(path.join(dir, 'config', 'bench.yaml'), registry(backend.port));
  const ports = new PortAllocator();
  const [
    xds,
    httpPort,
    clientOut,
    clientAdmin,
    clientHealth,
    serverIn,
    serverOut,
    serverAdmin,
    serverHealth,
    clientIn,
    clientApp,
    clientStats,
    serverStats,
  ] = await ports.takeMany(13);
  const children: ChildProcess[] = [];
  const stop = async () => {
    await stopApps(children);
    await backend.close();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    children.push(
      startApp('@mizzen/pilot', [
        '--host',
        '127.0.0.1',
        '--xds-port',
        String(xds),
        '--http-port',
        String(httpPort),
        '--config-dir',
        path.join(dir, 'config'),
        '--store',
        path.join(dir, 'store.json'),
        '--registrations',
        path.join(dir, 'registrations.json'),
      ]),
    );
    await waitFor('pilot', async () => (await fetch(`http://127.0.0.1:${httpPort}/ready`)).ok);
    const sidecar = (workload: string, app: string, ports: number[], appPort: number) =>
      startApp('@mizzen/sidecar-agent', [
        '--pilot',
        `127.0.0.1:${xds}`,
        '--workload',
        workload,
        '--service',
        app,
        '--labels',
        `app=${app}`,
        '--port',
        `http:8080:${appPort}:${ports[0]}`,
        '--ip',
        '127.0.0.1',
        '--outbound-port',
        String(ports[1]),
        '--admin-port',
        String(ports[2]),
        '--health-port',
        String(ports[3]),
        '--stats-port',
        String(ports[4]),
      ]);
    children.push(
      sidecar(
        'bench-server',
        'bench',
        [serverIn!, serverOut!, serverAdmin!, serverHealth!, serverStats!],
        backend.port,
      ),
    );
    children.push(
      sidecar(
        'bench-client',
        'bench-client',
        [clientIn!, clientOut!, clientAdmin!, clientHealth!, clientStats!],
        clientApp!,
      ),
    );
    await waitFor(
      'traffic through one sidecar',
      async () => (await viaProxy(clientOut!, 'http://bench-direct:8080/')) === 200,
    );
    await waitFor(
      'traffic through two sidecars',
      async () => (await viaProxy(clientOut!, 'http://bench:8080/')) === 200,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { backendPort: backend.port, clientProxyPort: clientOut!, stop };
}
