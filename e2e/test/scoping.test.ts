import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { curl } from '../src/clients.js';
import { type Backend, ProxyClient, type Reply, startBackend } from '../src/http.js';
import { eventually } from '../src/load.js';
import { type SidecarHandle, TestMesh } from '../src/mesh.js';

/**
 * What limits and shapes a proxy's view of the mesh, through pilot and real
 * sidecars: the Sidecar resource (egress hosts, outbound traffic policy, an
 * egress listener the app connects to, an ingress listener's
 * defaultEndpoint), delegate VirtualServices, exportTo, and TCP routes
 * chosen by the caller's labels.
 *
 *   client  (namespace default, app=client)  ─┐
 *   writer  (namespace other,   app=writer)  ─┼→ reviews (sidecar v1 + plain v2), ratings.other,
 *                                             │  secret.other, db (TCP primary/replica)
 *   reviews-v1 (namespace default, sidecar)  ←┘
 */

async function tcpEcho(name: string): Promise<{ port: number; close: () => Promise<void> }> {
  const server = net.createServer((s) => {
    s.on('error', () => {});
    s.write(`${name}\n`);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/** The first line a TCP service greets with, through a sidecar (HTTP CONNECT, as an app behind HTTP_PROXY). */
function tcpGreeting(outbound: number, target: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(outbound, '127.0.0.1', () =>
      s.write(`CONNECT ${target} HTTP/1.1\r\nhost: ${target}\r\n\r\n`),
    );
    let data = '';
    let tunneled = false;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no greeting through the tunnel: ${JSON.stringify(data)}`));
    }, 5000);
    s.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    s.on('data', (d) => {
      data += d.toString();
      if (!tunneled) {
        const end = data.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!/^HTTP\/1\.1 200/.test(data)) {
          clearTimeout(timer);
          s.destroy();
          reject(new Error(`CONNECT refused: ${data.split('\r\n')[0]}`));
          return;
        }
        tunneled = true;
        data = data.slice(end + 4);
      }
      const nl = data.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        s.end();
        resolve(data.slice(0, nl));
      }
    });
  });
}

/** A plain request to a local port with a Host header, as an app talking to a sidecar listener directly. */
function direct(port: number, path: string, host: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port, path, headers: { host }, timeout: 5000, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            body: Buffer.concat(chunks).toString(),
          }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out')));
    req.on('error', reject);
    req.end();
  });
}

describe('Sidecar, delegate VirtualServices, exportTo and TCP source routing through real sidecars', () => {
  const mesh = new TestMesh();
  const backends: Record<string, Backend> = {};
  const tcp: Record<string, { port: number; close: () => Promise<void> }> = {};
  let client: SidecarHandle;
  let writer: SidecarHandle;
  let reviews: SidecarHandle;
  let fromClient: ProxyClient;
  let fromWriter: ProxyClient;

  const versionOf = (r: Reply) =>
    r.status === 200 ? (JSON.parse(r.body) as { version: string }).version : r.status;
  /** N requests, counted by answer (the backend's version, or the status when it is not 200). */
  const tally = async (via: ProxyClient, n: number, url: string, headers: Record<string, string> = {}) => {
    const counts: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const v = String(versionOf(await via.request(url, headers)));
      counts[v] = (counts[v] ?? 0) + 1;
    }
    return counts;
  };
  const only = async (
    via: ProxyClient,
    url: string,
    expected: string,
    headers: Record<string, string> = {},
  ) =>
    eventually(`${url} to answer ${expected} only`, async () => {
      const seen = await tally(via, 10, url, headers);
      return JSON.stringify(seen) === JSON.stringify({ [expected]: 10 }) || JSON.stringify(seen);
    });
  const applied = async (yaml: string) => {
    const r = await mesh.apply(yaml);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
  };
  const removed = async (yaml: string) => {
    const r = await mesh.remove(yaml);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
  };

  beforeAll(async () => {
    for (const v of ['v1', 'v1-alt', 'v2']) backends[v] = await startBackend('reviews', v);
    backends.ratings = await startBackend('ratings', 'ratings');
    backends.secret = await startBackend('secret', 'secret');
    for (const role of ['primary', 'replica']) tcp[role] = await tcpEcho(role);
    const ratingsPort = backends.ratings.port;
    mesh.writeConfig(
      'services.yaml',
      `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: reviews } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: reviews-v2, namespace: default }
spec:
  address: 127.0.0.1
  ports: { http: ${backends.v2!.port} }
  labels: { app: reviews, version: v2 }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: default }
spec:
  host: reviews
  subsets: [{ name: v1, labels: { version: v1 } }, { name: v2, labels: { version: v2 } }]
---
# ratings in namespace other, also known by its address (127.0.0.1:${ratingsPort}).
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ratings, namespace: other }
spec:
  hosts: [ratings.other.svc.cluster.local]
  addresses: [127.0.0.1]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: ${ratingsPort}, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, labels: { version: v1 } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: secret, namespace: other }
spec:
  hosts: [secret.other.svc.cluster.local]
  exportTo: ["."]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, ports: { http: ${backends.secret.port} } }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: db, namespace: default }
spec:
  hosts: [db.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 7000, name: tcp, protocol: TCP }]
  endpoints:
    - { address: 127.0.0.1, ports: { tcp: ${tcp.primary!.port} }, labels: { role: primary } }
    - { address: 127.0.0.1, ports: { tcp: ${tcp.replica!.port} }, labels: { role: replica } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: db, namespace: default }
spec:
  host: db
  subsets: [{ name: primary, labels: { role: primary } }, { name: replica, labels: { role: replica } }]
`,
    );
    await mesh.startPilot(['--registration-grace-ms', '30000']);
    reviews = await mesh.startSidecar({
      workload: 'reviews-v1',
      service: 'reviews',
      labels: { app: 'reviews', version: 'v1' },
      appPort: backends.v1!.port,
    });
    client = await mesh.startSidecar({
      workload: 'client',
      service: 'client',
      labels: { app: 'client' },
      appPort: await mesh.ports.take(),
    });
    writer = await mesh.startSidecar({
      workload: 'writer',
      service: 'writer',
      namespace: 'other',
      labels: { app: 'writer' },
      appPort: await mesh.ports.take(),
    });
    await mesh.waitForSync([reviews.id, client.id, writer.id]);
    fromClient = new ProxyClient(client.outboundPort);
    fromWriter = new ProxyClient(writer.outboundPort);
    await eventually('both reviews versions reachable', async () => {
      const seen = await tally(fromClient, 10, 'http://reviews:9080/reviews/0');
      return (seen.v1 !== undefined && seen.v2 !== undefined) || JSON.stringify(seen);
    });
  });

  afterAll(async () => {
    fromClient?.close();
    fromWriter?.close();
    await mesh.stop();
    await Promise.all([...Object.values(backends), ...Object.values(tcp)].map((b) => b.close()));
  });

  it('Sidecar egress "./*": the namespace’s own services work, another namespace’s are blocked (REGISTRY_ONLY) or passed through (ALLOW_ANY)', async () => {
    const ratingsUrl = `http://ratings.other.svc.cluster.local:${backends.ratings!.port}/ratings/0`;
    const byAddress = `http://127.0.0.1:${backends.ratings!.port}/ratings/0`;
    const meshRoute = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ratings-mesh, namespace: other }
spec:
  hosts: [ratings.other.svc.cluster.local]
  http: [{ route: [{ destination: { host: ratings.other.svc.cluster.local }, headers: { response: { set: { x-routed: mesh } } } }] }]
`;
    await applied(meshRoute);
    // Without a Sidecar the client knows ratings: by name and by its address, routed by the mesh.
    await eventually('ratings routed by the mesh', async () => {
      const r = await fromClient.request(byAddress);
      return r.headers['x-routed'] === 'mesh' || `${r.status} ${JSON.stringify(r.headers)}`;
    });
    expect((await fromClient.request(ratingsUrl)).status).toBe(200);

    const scoped = (policy: string) => `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: client, namespace: default }
spec:
  workloadSelector: { labels: { app: client } }
  egress: [{ hosts: ["./*"] }]
  outboundTrafficPolicy: { mode: ${policy} }
`;
    await applied(scoped('REGISTRY_ONLY'));
    await eventually('ratings blocked for the client', async () => {
      const r = await fromClient.request(byAddress);
      return r.status === 502 || `${r.status} ${r.body}`;
    });
    const blocked = await fromClient.request(ratingsUrl);
    expect(blocked.status).toBe(502);
    expect(blocked.body).toContain('not in the mesh registry');
    expect((await fromClient.request(byAddress)).status).toBe(502);
    // Same namespace: untouched. Other workloads (writer, in other): untouched.
    expect(await tally(fromClient, 10, 'http://reviews:9080/reviews/0')).not.toHaveProperty('502');
    expect((await fromWriter.request(ratingsUrl)).headers['x-routed']).toBe('mesh');

    // ALLOW_ANY: the destination is still outside the scope, so the request passes through unrouted.
    await applied(scoped('ALLOW_ANY'));
    await eventually('ratings passed through', async () => {
      const r = await fromClient.request(byAddress);
      return (
        (r.status === 200 && r.headers['x-routed'] === undefined) || `${r.status} ${r.headers['x-routed']}`
      );
    });
    expect(JSON.parse((await fromClient.request(byAddress)).body)).toMatchObject({ name: 'ratings' });
    expect(await tally(fromClient, 10, 'http://reviews:9080/reviews/0')).not.toHaveProperty('502');

    await removed(scoped('ALLOW_ANY'));
    await eventually('ratings routed by the mesh again', async () => {
      const r = await fromClient.request(byAddress);
      return r.headers['x-routed'] === 'mesh' || `${r.status}`;
    });
    await removed(meshRoute);
  });

  it('Sidecar egress listener with captureMode NONE: the app talks to 127.0.0.1:<port> and reaches the hosts it names', async () => {
    const port = await mesh.ports.take();
    const listener = `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: client, namespace: default }
spec:
  workloadSelector: { labels: { app: client } }
  egress:
    - port: { number: ${port}, protocol: HTTP, name: http-local }
      captureMode: NONE
      hosts: ["./reviews.default.svc.cluster.local"]
    - hosts: ["./*"]
`;
    await applied(listener);
    await eventually(`reviews on 127.0.0.1:${port}`, async () => {
      const r = await direct(port, '/reviews/0', 'reviews');
      return r.status === 200 || `${r.status} ${r.body}`;
    });
    const seen: Record<string, number> = {};
    for (let i = 0; i < 10; i++) {
      const v = String(versionOf(await direct(port, '/reviews/0', `reviews:${port}`)));
      seen[v] = (seen[v] ?? 0) + 1;
    }
    expect(Object.keys(seen).sort()).toEqual(['v1', 'v2']);
    // A host the listener does not import is not routed to it: it takes the catch-all, not reviews.
    const before = backends.v1!.hits + backends.v2!.hits;
    expect((await direct(port, '/', 'ratings.other.svc.cluster.local')).status).not.toBe(200);
    expect(backends.v1!.hits + backends.v2!.hits).toBe(before);
    await removed(listener);
    await eventually(`127.0.0.1:${port} closed`, async () => {
      try {
        await direct(port, '/', 'reviews');
        return 'still open';
      } catch {
        return true;
      }
    });
  });

  it('Sidecar ingress defaultEndpoint: inbound traffic for port 9080 goes to the app port it names', async () => {
    const toV1 = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews-v1-only, namespace: default }
spec:
  hosts: [reviews]
  http: [{ route: [{ destination: { host: reviews, subset: v1 } }] }]
`;
    const ingress = `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: reviews, namespace: default }
spec:
  workloadSelector: { labels: { app: reviews } }
  ingress:
    - port: { number: 9080, protocol: HTTP, name: http }
      defaultEndpoint: 127.0.0.1:${backends['v1-alt']!.port}
`;
    await applied(toV1);
    await only(fromClient, 'http://reviews:9080/reviews/0', 'v1');
    await applied(ingress);
    await only(fromClient, 'http://reviews:9080/reviews/0', 'v1-alt');
    expect(backends['v1-alt']!.lastHeaders?.['x-request-id']).toBeTruthy();
    await removed(ingress);
    await only(fromClient, 'http://reviews:9080/reviews/0', 'v1');
    await removed(toV1);
  });

  it('Unix sockets: an app reaches its sidecar on a socket (egress bind unix://), the server sidecar delivers to the app’s socket (ingress defaultEndpoint unix://), and a ServiceEntry endpoint is a socket', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-uds-'));
    const answering = (version: string, file: string) =>
      new Promise<http.Server>((resolve) => {
        const server = http.createServer((req, res) =>
          res.end(JSON.stringify({ version, path: req.url, requestId: req.headers['x-request-id'] ?? null })),
        );
        server.listen(path.join(dir, file), () => resolve(server));
      });
    const apps = [await answering('v1-socket', 'reviews.sock'), await answering('node-agent', 'agent.sock')];
    const egressSocket = path.join(dir, 'client-egress.sock');
    /** A request from the client app through its sidecar's socket: curl --unix-socket, as users test it. */
    const viaSocket = async (url: string) => {
      const r = await curl(['--unix-socket', egressSocket, '-w', '\n%{http_code}', url]);
      const nl = r.stdout.lastIndexOf('\n');
      return { code: r.code, status: Number(r.stdout.slice(nl + 1)), body: r.stdout.slice(0, nl) };
    };
    const resources = `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: client-socket, namespace: default }
spec:
  workloadSelector: { labels: { app: client } }
  egress:
    - port: { number: 0, protocol: HTTP, name: http-socket }
      captureMode: NONE
      bind: unix://${egressSocket}
      hosts: ["./*"]
    - hosts: ["./*"]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: reviews-socket, namespace: default }
spec:
  workloadSelector: { labels: { app: reviews } }
  ingress:
    - port: { number: 9080, protocol: HTTP, name: http }
      defaultEndpoint: unix://${path.join(dir, 'reviews.sock')}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews-v1-only, namespace: default }
spec:
  hosts: [reviews]
  http: [{ route: [{ destination: { host: reviews, subset: v1 } }] }]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: node-agent, namespace: default }
spec:
  hosts: [node-agent.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 80, name: http, protocol: HTTP }]
  endpoints: [{ address: "unix://${path.join(dir, 'agent.sock')}" }]
`;
    try {
      await applied(resources);
      await eventually('reviews answered from its socket, through the client sidecar’s socket', async () => {
        const r = await viaSocket('http://reviews:9080/reviews/0');
        return (
          (r.status === 200 && JSON.parse(r.body).version === 'v1-socket') ||
          `${r.code} ${r.status} ${r.body}`
        );
      });
      const r = JSON.parse((await viaSocket('http://reviews:9080/reviews/0')).body);
      // Only the reviews sidecar knows that socket: the request went app → socket → sidecar → sidecar → socket.
      expect(r.requestId).toMatch(/^[0-9a-f-]{36}$/);
      const agent = await viaSocket('http://node-agent/healthz');
      expect([agent.status, JSON.parse(agent.body).version, JSON.parse(agent.body).path]).toEqual([
        200,
        'node-agent',
        '/healthz',
      ]);
      // The app's usual HTTP proxy port still works beside the socket.
      expect(versionOf(await fromClient.request('http://reviews:9080/reviews/0'))).toBe('v1-socket');
    } finally {
      await removed(resources);
      for (const a of apps) a.close();
    }
    // Removing the Sidecar closes the socket listener (and removes its file).
    await eventually('the egress socket closed', async () => !fs.existsSync(egressSocket) || 'still there');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('delegate VirtualService: /reviews traffic is routed as the delegate says, AND-ed with the root’s match', async () => {
    const root = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews-root, namespace: default }
spec:
  hosts: [reviews]
  http:
    - match: [{ uri: { prefix: /reviews } }]
      delegate: { name: reviews-routes, namespace: team }
    - directResponse: { status: 404, body: { string: not delegated } }
`;
    const delegate = (exportTo: string) => `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews-routes, namespace: team }
spec:
  exportTo: ${exportTo}
  http:
    - match: [{ headers: { end-user: { exact: jason } } }]
      route: [{ destination: { host: reviews.default.svc.cluster.local, subset: v2 } }]
    - route: [{ destination: { host: reviews.default.svc.cluster.local, subset: v1 } }]
`;
    await applied(`${root}---${delegate('["*"]')}`);
    await only(fromClient, 'http://reviews:9080/reviews/0', 'v2', { 'end-user': 'jason' });
    expect(await tally(fromClient, 20, 'http://reviews:9080/reviews/0')).toEqual({ v1: 20 });
    expect(await tally(fromClient, 20, 'http://reviews:9080/reviews/0', { 'end-user': 'jason' })).toEqual({
      v2: 20,
    });
    // Outside the root's /reviews match the delegate does not apply.
    const other = await fromClient.request('http://reviews:9080/details/0', { 'end-user': 'jason' });
    expect([other.status, other.body]).toEqual([404, 'not delegated']);
    // A delegate not exported to the root's namespace is not used: the root's next route answers.
    await applied(delegate('["."]'));
    await only(fromClient, 'http://reviews:9080/reviews/0', '404');
    await removed(`${root}---${delegate('["."]')}`);
    await eventually('reviews back to both versions', async () => {
      const seen = await tally(fromClient, 10, 'http://reviews:9080/reviews/0');
      return (seen.v1 !== undefined && seen.v2 !== undefined) || JSON.stringify(seen);
    });
  });

  it('exportTo ".": a VirtualService, a DestinationRule and a ServiceEntry stay in their namespace', async () => {
    const ratingsUrl = `http://ratings.other.svc.cluster.local:${backends.ratings!.port}/ratings/0`;
    // VirtualService: only namespace other gets its response header.
    const privateVs = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ratings-private, namespace: other }
spec:
  hosts: [ratings.other.svc.cluster.local]
  exportTo: ["."]
  http: [{ route: [{ destination: { host: ratings.other.svc.cluster.local }, headers: { response: { set: { x-ratings-vs: private } } } }] }]
`;
    await applied(privateVs);
    await eventually('the private VirtualService in force in other', async () => {
      const r = await fromWriter.request(ratingsUrl);
      return r.headers['x-ratings-vs'] === 'private' || `${r.status}`;
    });
    const fromDefault = await fromClient.request(ratingsUrl);
    expect([fromDefault.status, fromDefault.headers['x-ratings-vs']]).toEqual([200, undefined]);
    await removed(privateVs);

    // DestinationRule: a subset only namespace other knows; a route to it from default has no cluster.
    const privateDr = `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: ratings, namespace: other }
spec:
  host: ratings.other.svc.cluster.local
  exportTo: ["."]
  subsets: [{ name: v1, labels: { version: v1 } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: ratings-v1, namespace: other }
spec:
  hosts: [ratings.other.svc.cluster.local]
  http:
    - headers: { response: { set: { x-ratings-route: subset-v1 } } }
      route: [{ destination: { host: ratings.other.svc.cluster.local, subset: v1 } }]
`;
    await applied(privateDr);
    await eventually('the subset route in force for both namespaces', async () => {
      const r = await fromClient.request(ratingsUrl);
      if (r.status !== 503) return `${r.status} ${r.body}`;
      // The writer's sidecar routes to the subset and has that cluster's endpoints (they can arrive after the route).
      const w = await fromWriter.request(ratingsUrl);
      return (w.status === 200 && w.headers['x-ratings-route'] === 'subset-v1') || `${w.status} ${w.body}`;
    });
    expect((await fromWriter.request(ratingsUrl)).status).toBe(200);
    await applied(privateDr.replace('exportTo: ["."]', 'exportTo: ["*"]'));
    await eventually('the subset exported to default', async () => {
      const r = await fromClient.request(ratingsUrl);
      return r.status === 200 || `${r.status}`;
    });
    await removed(privateDr);

    // ServiceEntry: secret.other is exported only to other. Under REGISTRY_ONLY the client cannot reach it.
    const registryOnly = `
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: { name: client, namespace: default }
spec:
  workloadSelector: { labels: { app: client } }
  outboundTrafficPolicy: { mode: REGISTRY_ONLY }
`;
    await applied(registryOnly);
    const hits = backends.secret!.hits;
    await eventually('secret unknown to the client', async () => {
      const r = await fromClient.request('http://secret.other.svc.cluster.local:9080/');
      return r.status === 502 || `${r.status}`;
    });
    expect(backends.secret!.hits).toBe(hits);
    const fromOther = await fromWriter.request('http://secret.other.svc.cluster.local:9080/');
    expect([fromOther.status, JSON.parse(fromOther.body).name]).toEqual([200, 'secret']);
    await removed(registryOnly);
  });

  it('TCP routes by sourceLabels: the writer’s connections go to the primary, everyone else’s to the replica', async () => {
    const route = `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: db, namespace: default }
spec:
  hosts: [db]
  tcp:
    - match: [{ sourceLabels: { app: writer } }]
      route: [{ destination: { host: db, subset: primary } }]
    - route: [{ destination: { host: db, subset: replica } }]
`;
    await applied(route);
    const greetings = async (via: SidecarHandle, n: number) => {
      const seen: Record<string, number> = {};
      for (let i = 0; i < n; i++) {
        const g = await tcpGreeting(via.outboundPort, 'db.default.svc.cluster.local:7000');
        seen[g] = (seen[g] ?? 0) + 1;
      }
      return seen;
    };
    await eventually('the source-label route in force', async () => {
      const w = await greetings(writer, 5);
      const c = await greetings(client, 5);
      return (w.primary === 5 && c.replica === 5) || JSON.stringify({ w, c });
    });
    expect(await greetings(writer, 20)).toEqual({ primary: 20 });
    expect(await greetings(client, 20)).toEqual({ replica: 20 });
    await removed(route);
  });
});
