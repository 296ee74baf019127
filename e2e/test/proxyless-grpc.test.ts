import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../src/load.js';
import { TestMesh } from '../src/mesh.js';

/**
 * Proxyless gRPC: a stock @grpc/grpc-js-xds client resolves
 * xds:///greeter.default.svc.cluster.local:50051 through pilot and calls real
 * gRPC servers; a weighted VirtualService splits its calls.
 */
const json = {
  serialize: (v: unknown) => Buffer.from(JSON.stringify(v)),
  deserialize: (b: Buffer) => JSON.parse(b.toString()) as unknown,
};

const GREETER = {
  Hello: {
    path: '/mizzen.test.Greeter/Hello',
    requestStream: false,
    responseStream: false,
    requestSerialize: json.serialize,
    requestDeserialize: json.deserialize,
    responseSerialize: json.serialize,
    responseDeserialize: json.deserialize,
  },
} satisfies grpc.ServiceDefinition;

async function startGreeter(version: string): Promise<{ port: number; server: grpc.Server }> {
  const server = new grpc.Server();
  server.addService(GREETER, {
    Hello: (_call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) =>
      cb(null, { version }),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return { port, server };
}

function registry(v1Port: number, v2Port: number): string {
  return `
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: greeter, namespace: default }
spec:
  hosts: [greeter.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 50051, name: grpc, protocol: GRPC }]
  workloadSelector: { labels: { app: greeter } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: greeter-v1, namespace: default }
spec: { address: 127.0.0.1, ports: { grpc: ${v1Port} }, labels: { app: greeter, version: v1 } }
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: { name: greeter-v2, namespace: default }
spec: { address: 127.0.0.1, ports: { grpc: ${v2Port} }, labels: { app: greeter, version: v2 } }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: greeter, namespace: default }
spec:
  host: greeter
  subsets:
    - { name: v1, labels: { version: v1 } }
    - { name: v2, labels: { version: v2 } }
`;
}

function weights(v1: number, v2: number): string {
  return `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: greeter, namespace: default }
spec:
  hosts: [greeter]
  http:
    - route:
        - { destination: { host: greeter, subset: v1 }, weight: ${v1} }
        - { destination: { host: greeter, subset: v2 }, weight: ${v2} }
`;
}

describe('proxyless gRPC through pilot (grpc-js-xds)', () => {
  const mesh = new TestMesh();
  const servers: grpc.Server[] = [];
  let client: grpc.Client & {
    Hello: (req: unknown, cb: (err: grpc.ServiceError | null, res: { version: string }) => void) => void;
  };

  const call = () =>
    new Promise<string>((resolve, reject) =>
      client.Hello({}, (err, res) =>
        err ? reject(new Error(`${err.code} ${err.details}`)) : resolve(res.version),
      ),
    );

  beforeAll(async () => {
    const v1 = await startGreeter('v1');
    const v2 = await startGreeter('v2');
    servers.push(v1.server, v2.server);
    mesh.writeConfig('greeter.yaml', registry(v1.port, v2.port));
    const pilot = await mesh.startPilot();
    process.env.GRPC_XDS_BOOTSTRAP_CONFIG = JSON.stringify({
      xds_servers: [
        { server_uri: pilot.xds, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] },
      ],
      node: {
        id: 'sidecar~127.0.0.1~grpc-client.default~default.svc.cluster.local',
        metadata: { GENERATOR: 'grpc', NAMESPACE: 'default' },
        locality: {},
      },
    });
    grpcXds.register();
    const Client = grpc.makeGenericClientConstructor(GREETER, 'Greeter');
    client = new Client(
      'xds:///greeter.default.svc.cluster.local:50051',
      grpc.credentials.createInsecure(),
    ) as unknown as typeof client;
  });

  afterAll(async () => {
    client?.close();
    for (const s of servers) s.forceShutdown();
    await mesh.stop();
  });

  it('resolves the service through pilot and calls both versions with no VirtualService', async () => {
    const seen = new Set<string>();
    await eventually('calls to reach both versions', async () => {
      seen.add(await call());
      return seen.size === 2;
    });
    expect([...seen].sort()).toEqual(['v1', 'v2']);
    const proxy = (await mesh.syncz()).find((e) => e.proxy.includes('grpc-client'));
    expect(proxy?.sync?.LDS).toBe('ACKED');
    expect(proxy?.sync?.RDS).toBe('ACKED');
  });

  it('splits calls 80/20 with a weighted VirtualService', async () => {
    expect((await mesh.apply(weights(80, 20))).status).toBe(200);
    await eventually('the weighted route to reach the client', async () => {
      let v1 = 0;
      for (let i = 0; i < 50; i++) if ((await call()) === 'v1') v1++;
      return v1 >= 30 && v1 <= 48;
    });
    let v1 = 0;
    for (let i = 0; i < 1000; i++) if ((await call()) === 'v1') v1++;
    expect(v1 / 10).toBeGreaterThanOrEqual(75);
    expect(v1 / 10).toBeLessThanOrEqual(85);
  });

  it('moves every call when the weights change to 0/100', async () => {
    expect((await mesh.apply(weights(0, 100))).status).toBe(200);
    await eventually('all calls on v2', async () => {
      for (let i = 0; i < 20; i++) if ((await call()) !== 'v2') return false;
      return true;
    });
  });
});
