import type net from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { ECHO, echoUnary, grpcServer, tcpEcho } from '../src/echo-servers.js';
import { eventually } from '../src/load.js';
import { type SidecarHandle, TestMesh } from '../src/mesh.js';
import { tcpThroughSidecar } from '../src/tcp.js';

/**
 * Every protocol Istio carries, app → sidecar → sidecar → app over mutual
 * TLS, with real clients and servers: gRPC unary and bidirectional streaming
 * (trailers and grpc-status kept), a WebSocket echo, and opaque TCP with a
 * weighted VirtualService tcp route shifting connections between versions.
 */
const SERVICES = `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: grpc-echo, namespace: default }
spec:
  hosts: [grpc-echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 7070, name: grpc, protocol: GRPC }]
  workloadSelector: { labels: { app: grpc-echo } }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: ws-echo, namespace: default }
spec:
  hosts: [ws-echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 8080, name: http, protocol: HTTP }]
  workloadSelector: { labels: { app: ws-echo } }
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: tcp-echo, namespace: default }
spec:
  hosts: [tcp-echo.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9000, name: tcp, protocol: TCP }]
  workloadSelector: { labels: { app: tcp-echo } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: tcp-echo, namespace: default }
spec:
  host: tcp-echo
  subsets:
    - { name: v1, labels: { version: v1 } }
    - { name: v2, labels: { version: v2 } }
`;

const tcpShift = (v1: number, v2: number) => `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: tcp-echo, namespace: default }
spec:
  hosts: [tcp-echo]
  tcp:
    - match: [{ port: 9000 }]
      route:
        - { destination: { host: tcp-echo, port: { number: 9000 }, subset: v1 }, weight: ${v1} }
        - { destination: { host: tcp-echo, port: { number: 9000 }, subset: v2 }, weight: ${v2} }
`;

describe('protocols through two sidecars over mutual TLS', () => {
  const mesh = new TestMesh();
  let client: SidecarHandle;
  let grpcApp: Awaited<ReturnType<typeof grpcServer>>;
  let wsServer: WebSocketServer;
  const tcpApps: Awaited<ReturnType<typeof tcpEcho>>[] = [];
  let grpcClient: grpc.Client;

  beforeAll(async () => {
    mesh.writeConfig('services.yaml', SERVICES);
    await mesh.startCitadel();
    await mesh.startPilot(['--registration-grace-ms', '30000']);
    grpcApp = await grpcServer();
    wsServer = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((r) => wsServer.once('listening', () => r()));
    wsServer.on('connection', (socket, req) =>
      socket.on('message', (m) => socket.send(`${req.url}:${m.toString()}`)),
    );
    const wsPort = (wsServer.address() as net.AddressInfo).port;
    const sidecars = [
      await mesh.startSidecar({
        workload: 'grpc-echo-v1',
        service: 'grpc-echo',
        labels: { app: 'grpc-echo', version: 'v1' },
        appPort: grpcApp.port,
        servicePort: 7070,
        portName: 'grpc',
      }),
      await mesh.startSidecar({
        workload: 'ws-echo-v1',
        service: 'ws-echo',
        labels: { app: 'ws-echo', version: 'v1' },
        appPort: wsPort,
        servicePort: 8080,
      }),
    ];
    for (const version of ['v1', 'v2']) {
      const app = await tcpEcho(version);
      tcpApps.push(app);
      sidecars.push(
        await mesh.startSidecar({
          workload: `tcp-echo-${version}`,
          service: 'tcp-echo',
          labels: { app: 'tcp-echo', version },
          appPort: app.port,
          servicePort: 9000,
          portName: 'tcp',
        }),
      );
    }
    client = await mesh.startSidecar({
      workload: 'sleep',
      service: 'sleep',
      labels: { app: 'sleep' },
      appPort: 1,
    });
    await mesh.waitForSync([...sidecars, client].map((s) => s.id));
    // gRPC apps reach their sidecar as HTTP_PROXY users do: a CONNECT tunnel (grpc-js honours grpc_proxy).
    const before = process.env.grpc_proxy;
    process.env.grpc_proxy = `http://127.0.0.1:${client.outboundPort}`;
    try {
      const Ctor = grpc.makeGenericClientConstructor(ECHO, 'Echo');
      grpcClient = new Ctor('grpc-echo.default.svc.cluster.local:7070', grpc.credentials.createInsecure());
    } finally {
      if (before === undefined) delete process.env.grpc_proxy;
      else process.env.grpc_proxy = before;
    }
  }, 120_000);

  afterAll(async () => {
    grpcClient?.close();
    grpcApp?.stop();
    wsServer?.close();
    for (const a of tcpApps) await a.close();
    await mesh.stop();
  });

  const unary = (text: string) => echoUnary(grpcClient, text);

  it('gRPC unary: answers, error statuses and trailers arrive as the server sent them', async () => {
    await eventually('a gRPC answer through the mesh', async () => (await unary('warm')).code === 0, 20_000);
    const ok = await unary('hello');
    expect(ok.value).toBe('echo:hello');
    expect(ok.trailer).toBe('kept');
    const failed = await unary('fail');
    expect(failed.code).toBe(grpc.status.FAILED_PRECONDITION);
  });

  it('gRPC bidirectional streaming: messages flow both ways on one call', async () => {
    const call = (
      grpcClient as unknown as Record<string, (...a: unknown[]) => grpc.ClientDuplexStream<Buffer, Buffer>>
    ).Chat!(new grpc.Metadata(), { deadline: Date.now() + 10_000 });
    const got: string[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on('data', (m: Buffer) => {
        got.push(m.toString());
        // Each answer prompts the next message: a real conversation, not a batch.
        if (got.length < 5) call.write(Buffer.from(`m${got.length}`));
        else call.end();
      });
      call.on('end', () => resolve());
      call.on('error', reject);
    });
    call.write(Buffer.from('m0'));
    await done;
    expect(got).toEqual(['re:m0', 're:m1', 're:m2', 're:m3', 're:m4']);
  });

  it('WebSocket: an echo conversation through both sidecars', async () => {
    const socket = new WebSocket(`ws://127.0.0.1:${client.outboundPort}/chat`, {
      headers: { host: 'ws-echo.default.svc.cluster.local:8080' },
    });
    const replies: string[] = [];
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no echo: ${replies.join('|')}`)), 10_000);
      socket.on('open', () => socket.send('one'));
      socket.on('message', (m) => {
        replies.push(m.toString());
        if (replies.length === 1) socket.send('two');
        else {
          clearTimeout(timer);
          socket.close();
          resolve();
        }
      });
      socket.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.on('unexpected-response', (_req, res) => {
        clearTimeout(timer);
        reject(new Error(`upgrade refused: ${res.statusCode}`));
      });
    });
    expect(replies).toEqual(['/chat:one', '/chat:two']);
  });

  it('TCP traffic shifting: a weighted tcp route moves connections from v1 to v2', async () => {
    const target = 'tcp-echo.default.svc.cluster.local:9000';
    expect((await mesh.apply(tcpShift(100, 0))).status).toBe(200);
    await eventually(
      'ten connections in a row to v1',
      async () => {
        for (let i = 0; i < 10; i++)
          if ((await tcpThroughSidecar(client.outboundPort, target)) !== 'v1') return false;
        return true;
      },
      15_000,
    );
    expect((await mesh.apply(tcpShift(20, 80))).status).toBe(200);
    await eventually(
      'v2 answering',
      async () => (await tcpThroughSidecar(client.outboundPort, target)) === 'v2',
      15_000,
    );
    const counts = { v1: 0, v2: 0 } as Record<string, number>;
    for (let i = 0; i < 100; i++) counts[await tcpThroughSidecar(client.outboundPort, target)]!++;
    // 80 ± 15 of 100 (well over four standard deviations).
    expect(counts.v2).toBeGreaterThanOrEqual(65);
    expect(counts.v2).toBeLessThanOrEqual(95);
    expect(counts.v1! + counts.v2!).toBe(100);
  });
});
