import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateTokenSecret, mintWorkloadToken } from '@mizzen/pki';
import { PortAllocator } from '@mizzen/runtime';
import { startApp, stopApps } from './processes.js';

const BODY = JSON.stringify({ service: 'bench', ok: true, padding: 'x'.repeat(200) });

/**
 * A RateLimitPolicy that never rejects (the largest limit there is) but
 * makes every request count: what a limit costs, with counters in the
 * sidecar's memory and in Redis.
 */
export const LIMITED_SERVICES = ['bench-limited-memory', 'bench-limited-redis'] as const;

function rateLimitConfig(): string {
  return [
    ...LIMITED_SERVICES.map(
      (name) => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ${name}, namespace: default }
spec:
  hosts: [${name}.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 8080, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: ${name} } }
`,
    ),
    `apiVersion: policy.mizzen.io/v1alpha1
kind: RateLimitPolicy
metadata: { name: bench, namespace: default }
spec:
  selector: { matchLabels: { ratelimit: bench } }
  rules:
  - descriptors: [{ remoteAddress: {} }]
    limit: { requests: 4294967295, unit: SECOND }
`,
  ].join('---\n');
}

export interface BenchMeshOptions {
  /**
   * Also start two server sidecars behind a never-rejecting RateLimitPolicy
   * (services in LIMITED_SERVICES): one counting in memory, one in this Redis.
   */
  rateLimitRedisUrl?: string;
}

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
  return viaProxyHeaders(proxyPort, url).then((r) => r.status);
}

function viaProxyHeaders(
  proxyPort: number,
  url: string,
): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const req = http.request(
      { host: '127.0.0.1', port: proxyPort, path: url, headers: { host: u.host } },
      (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Starts pilot, a backend, a server sidecar in front of it and a client sidecar; resolves when traffic flows. */
export async function startBenchMesh(options: BenchMeshOptions = {}): Promise<BenchTargets> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-bench-'));
  const backend = await startBackend();
  fs.mkdirSync(path.join(dir, 'config'));
  fs.writeFileSync(path.join(dir, 'config', 'bench.yaml'), registry(backend.port));
  if (options.rateLimitRedisUrl)
    fs.writeFileSync(path.join(dir, 'config', 'rate-limits.yaml'), rateLimitConfig());
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
    caGrpc,
    caHttp,
  ] = await ports.takeMany(15);
  const children: ChildProcess[] = [];
  const stop = async () => {
    await stopApps(children);
    await backend.close();
    fs.rmSync(dir, { recursive: true, force: true });
  };
  try {
    // Mutual TLS between the sidecars, as in `mizzen up`: citadel issues each one a certificate.
    const caDir = path.join(dir, 'ca');
    const tokenSecret = generateTokenSecret();
    fs.mkdirSync(caDir, { mode: 0o700 });
    fs.writeFileSync(path.join(caDir, 'token-key'), tokenSecret, { mode: 0o600 });
    children.push(
      startApp('@mizzen/citadel', [
        '--host',
        '127.0.0.1',
        '--grpc-port',
        String(caGrpc),
        '--http-port',
        String(caHttp),
        '--ca-dir',
        caDir,
        '--token-key',
        path.join(caDir, 'token-key'),
      ]),
    );
    await waitFor('citadel', async () => (await fetch(`http://127.0.0.1:${caHttp}/ready`)).ok);
    const certificateFlags = async (workload: string, serviceAccount: string) => {
      const file = path.join(caDir, `${workload}.jwt`);
      const token = await mintWorkloadToken(tokenSecret, {
        namespace: 'default',
        serviceAccount,
        ttlSeconds: 3600,
      });
      fs.writeFileSync(file, token, { mode: 0o600 });
      return [
        '--service-account',
        serviceAccount,
        '--ca-address',
        `127.0.0.1:${caGrpc}`,
        '--ca-token-file',
        file,
        '--ca-root-cert',
        path.join(caDir, 'root-cert.pem'),
      ];
    };
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
        '--citadel-url',
        `http://127.0.0.1:${caHttp}`,
      ]),
    );
    await waitFor('pilot', async () => (await fetch(`http://127.0.0.1:${httpPort}/ready`)).ok);
    const sidecar = async (
      workload: string,
      app: string,
      ports: number[],
      appPort: number,
      env: Record<string, string> = {},
      labels = '',
    ) =>
      startApp(
        '@mizzen/sidecar-agent',
        [
          '--pilot',
          `127.0.0.1:${xds}`,
          '--workload',
          workload,
          '--service',
          app,
          '--labels',
          `app=${app}${labels}`,
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
          ...(await certificateFlags(workload, app)),
        ],
        env,
      );
    children.push(
      await sidecar(
        'bench-server',
        'bench',
        [serverIn!, serverOut!, serverAdmin!, serverHealth!, serverStats!],
        backend.port,
      ),
    );
    children.push(
      await sidecar(
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
    if (options.rateLimitRedisUrl) {
      for (const name of LIMITED_SERVICES) {
        const env: Record<string, string> = name.endsWith('redis')
          ? { REDIS_URL: options.rateLimitRedisUrl }
          : {};
        children.push(
          await sidecar(name, name, await ports.takeMany(5), backend.port, env, ',ratelimit=bench'),
        );
        await waitFor(`the rate limit policy at ${name}`, async () => {
          const r = await viaProxyHeaders(clientOut!, `http://${name}:8080/`);
          return r.status === 200 && r.headers['ratelimit-limit'] !== undefined;
        });
      }
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { backendPort: backend.port, clientProxyPort: clientOut!, stop };
}
