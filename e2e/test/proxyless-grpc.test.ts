import * as grpc from '@grpc/grpc-js';
import * as grpcXds from '@grpc/grpc-js-xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually } from '../src/load.js';
import { TestMesh } from '../src/mesh.js';

/**
 * Proxyless gRPC: a stock @grpc/grpc-js-xds client resolves
 * xds:///greeter.default.svc.cluster.local:50051 through pilot and calls real
 * gRPC servers, and the same VirtualService and DestinationRule YAML that
 * drives sidecars drives it: weighted subsets, header matching, fault
 * injection, retries, ring-hash affinity and outlier detection — every
 * traffic feature grpc-js-xds implements (all enabled by default in 1.14:
 * GRPC_XDS_EXPERIMENTAL_FAULT_INJECTION, _ENABLE_RETRY, _ENABLE_RING_HASH,
 * GRPC_EXPERIMENTAL_ENABLE_OUTLIER_DETECTION).
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

/** How a greeter answers a call: undefined for OK, or the status code it fails with. */
type Behaviour = (call: grpc.ServerUnaryCall<unknown, unknown>) => grpc.status | undefined;

/** While `on`, greeters hold their answers in `waiting` until the test releases them. */
interface Hold {
  on: boolean;
  waiting: (() => void)[];
}

async function startGreeter(
  version: string,
  behave: Behaviour = () => undefined,
  hits: Record<string, number> = {},
  hold: Hold = { on: false, waiting: [] },
): Promise<{ port: number; server: grpc.Server }> {
  const server = new grpc.Server();
  server.addService(GREETER, {
    Hello: (call: grpc.ServerUnaryCall<unknown, unknown>, cb: grpc.sendUnaryData<unknown>) => {
      hits[version] = (hits[version] ?? 0) + 1;
      if (hold.on) {
        hold.waiting.push(() => cb(null, { version }));
        return;
      }
      const code = behave(call);
      if (code !== undefined) cb({ code, details: `${version} fails` });
      else cb(null, { version });
    },
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

function virtualService(http: string): string {
  return `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: greeter, namespace: default }
spec:
  hosts: [greeter]
  http:
${http}`;
}

function destinationRule(trafficPolicy: string): string {
  return `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: greeter, namespace: default }
spec:
  host: greeter
  trafficPolicy:
${trafficPolicy}
  subsets:
    - { name: v1, labels: { version: v1 } }
    - { name: v2, labels: { version: v2 } }
`;
}

describe('proxyless gRPC through pilot (grpc-js-xds)', () => {
  const mesh = new TestMesh();
  const servers: grpc.Server[] = [];
  /** Calls each greeter answered (failures included). */
  const hits: Record<string, number> = {};
  /** Greeters answering UNAVAILABLE to everything, and those failing every call's first attempt. */
  const failing = new Set<string>();
  const failFirstAttempt = new Set<string>();
  const hold: Hold = { on: false, waiting: [] };
  let client: grpc.Client & {
    Hello: (
      req: unknown,
      md: grpc.Metadata,
      opts: grpc.CallOptions,
      cb: (err: grpc.ServiceError | null, res: { version: string }) => void,
    ) => void;
  };

  /** One call: the version that answered, or `code N`. */
  const attempt = (headers: Record<string, string> = {}) =>
    new Promise<string>((resolve) => {
      const md = new grpc.Metadata();
      for (const [k, v] of Object.entries(headers)) md.set(k, v);
      client.Hello({}, md, { deadline: Date.now() + 20_000 }, (err, res) =>
        resolve(err ? `code ${err.code}` : res.version),
      );
    });

  const call = async (headers: Record<string, string> = {}) => {
    const r = await attempt(headers);
    if (r.startsWith('code ')) throw new Error(`call failed: ${r}`);
    return r;
  };

  const tally = async (n: number, headers: Record<string, string> = {}) => {
    const out: Record<string, number> = {};
    for (let i = 0; i < n; i++) {
      const r = await attempt(headers);
      out[r] = (out[r] ?? 0) + 1;
    }
    return out;
  };

  const applied = async (yaml: string) => expect((await mesh.apply(yaml)).status).toBe(200);

  beforeAll(async () => {
    const behaviour =
      (version: string): Behaviour =>
      (c) => {
        if (failing.has(version)) return grpc.status.UNAVAILABLE;
        if (failFirstAttempt.has(version) && c.metadata.get('grpc-previous-rpc-attempts').length === 0)
          return grpc.status.UNAVAILABLE;
        return undefined;
      };
    const v1 = await startGreeter('v1', behaviour('v1'), hits, hold);
    const v2 = await startGreeter('v2', behaviour('v2'), hits, hold);
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
    hold.on = false;
    for (const release of hold.waiting.splice(0)) release();
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

  it('header matching: a header sends the call to another subset', async () => {
    await applied(
      virtualService(`
    - match: [{ headers: { x-user: { exact: jason } } }]
      route: [{ destination: { host: greeter, subset: v2 } }]
    - route: [{ destination: { host: greeter, subset: v1 } }]
`),
    );
    await eventually('the header route to reach the client', async () => {
      return (await call({ 'x-user': 'jason' })) === 'v2' && (await call()) === 'v1';
    });
    expect(await tally(20, { 'x-user': 'jason' })).toEqual({ v2: 20 });
    expect(await tally(20, { 'x-user': 'someone-else' })).toEqual({ v1: 20 });
  });

  it('fault injection: aborts with the gRPC status at the given percentage, and delays', async () => {
    await applied(
      virtualService(`
    - match: [{ headers: { x-fault: { exact: abort } } }]
      fault: { abort: { grpcStatus: UNAVAILABLE, percentage: { value: 100 } } }
      route: [{ destination: { host: greeter, subset: v1 } }]
    - match: [{ headers: { x-fault: { exact: half } } }]
      fault: { abort: { grpcStatus: RESOURCE_EXHAUSTED, percentage: { value: 50 } } }
      route: [{ destination: { host: greeter, subset: v1 } }]
    - match: [{ headers: { x-fault: { exact: delay } } }]
      fault: { delay: { fixedDelay: 1s, percentage: { value: 100 } } }
      route: [{ destination: { host: greeter, subset: v1 } }]
    - route: [{ destination: { host: greeter, subset: v1 } }]
`),
    );
    await eventually(
      'the fault to reach the client',
      async () => (await attempt({ 'x-fault': 'abort' })) === 'code 14',
    );
    const before = hits.v1 ?? 0;
    expect(await tally(10, { 'x-fault': 'abort' })).toEqual({ 'code 14': 10 });
    expect(hits.v1 ?? 0).toBe(before); // aborted in the client: the server never saw them
    const half = await tally(200, { 'x-fault': 'half' });
    expect(half['code 8'] ?? 0).toBeGreaterThanOrEqual(70);
    expect(half['code 8'] ?? 0).toBeLessThanOrEqual(130);
    expect((half['code 8'] ?? 0) + (half.v1 ?? 0)).toBe(200);
    const started = Date.now();
    expect(await call({ 'x-fault': 'delay' })).toBe('v1');
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
  });

  it('retries: a call whose first attempt fails UNAVAILABLE succeeds with retries, and fails without', async () => {
    await applied(
      virtualService(`
    - match: [{ headers: { x-retry: { exact: "yes" } } }]
      route: [{ destination: { host: greeter, subset: v1 } }]
      retries: { attempts: 2, retryOn: unavailable }
    - match: [{ headers: { x-retry: { exact: "no" } } }]
      route: [{ destination: { host: greeter, subset: v1 } }]
    - route: [{ destination: { host: greeter, subset: v2 } }]
`),
    );
    await eventually('the retry routes to reach the client', async () => (await attempt()) === 'v2');
    failFirstAttempt.add('v1');
    try {
      const before = hits.v1 ?? 0;
      expect(await tally(10, { 'x-retry': 'yes' })).toEqual({ v1: 10 });
      expect((hits.v1 ?? 0) - before).toBe(20); // every call: one failed attempt, one retry
      expect(await tally(5, { 'x-retry': 'no' })).toEqual({ 'code 14': 5 });
    } finally {
      failFirstAttempt.delete('v1');
    }
  });

  it('ring hash: a DestinationRule consistentHash keeps each user on one server', async () => {
    await applied(
      `${destinationRule('    loadBalancer: { consistentHash: { httpHeaderName: x-user } }')}---${virtualService(
        '    - route: [{ destination: { host: greeter } }]\n',
      )}`,
    );
    const seen = new Set<string>();
    await eventually('users spread over both servers, each on one', async () => {
      seen.clear();
      for (let u = 0; u < 12; u++) {
        const first = await call({ 'x-user': `user-${u}` });
        for (let i = 0; i < 3; i++)
          if ((await call({ 'x-user': `user-${u}` })) !== first) return `user-${u} moved`;
        seen.add(first);
      }
      return seen.size === 2 || `only ${[...seen]}`;
    });
    for (let u = 0; u < 12; u++) {
      const answers = new Set<string>();
      for (let i = 0; i < 5; i++) answers.add(await call({ 'x-user': `user-${u}` }));
      expect(answers.size, `user-${u}`).toBe(1);
    }
  });

  it('ring hash: a sidecar sends each user to the same server the proxyless client picks (both hash as Envoy)', async () => {
    // gRPC's ring hash follows Envoy's (gRFC A42): xxHash64 of "<address>_<n>" points and of the header value.
    // Two independent implementations agreeing on 24 users' servers leaves one chance in 2^24 of luck.
    await applied(
      `${destinationRule('    loadBalancer: { consistentHash: { httpHeaderName: x-user } }')}---${virtualService(
        '    - route: [{ destination: { host: greeter } }]\n',
      )}`,
    );
    const sidecar = await mesh.startSidecar({
      workload: 'hash-caller',
      service: 'hash-caller',
      labels: { app: 'hash-caller' },
      appPort: await mesh.ports.take(),
    });
    await mesh.waitForSync([sidecar.id], 60_000);
    // The app reaches its sidecar as HTTP_PROXY users do: a CONNECT tunnel (grpc-js honours grpc_proxy).
    const before = process.env.grpc_proxy;
    process.env.grpc_proxy = `http://127.0.0.1:${sidecar.outboundPort}`;
    let viaSidecar: typeof client;
    try {
      const Client = grpc.makeGenericClientConstructor(GREETER, 'Greeter');
      viaSidecar = new Client(
        'greeter.default.svc.cluster.local:50051',
        grpc.credentials.createInsecure(),
      ) as unknown as typeof client;
    } finally {
      if (before === undefined) delete process.env.grpc_proxy;
      else process.env.grpc_proxy = before;
    }
    const callVia = (user: string) =>
      new Promise<string>((resolve) => {
        const md = new grpc.Metadata();
        md.set('x-user', user);
        viaSidecar.Hello({}, md, { deadline: Date.now() + 20_000 }, (err, res) =>
          resolve(err ? `code ${err.code}` : res.version),
        );
      });
    try {
      const users = Array.from({ length: 24 }, (_, u) => `user-${u}`);
      await eventually('the proxyless client on the ring hash config', async () => {
        for (const u of users.slice(0, 4)) {
          const first = await call({ 'x-user': u });
          if ((await call({ 'x-user': u })) !== first) return `${u} moved`;
        }
        return true;
      });
      const proxyless = await Promise.all(users.map((u) => call({ 'x-user': u })));
      const sidecarPicks = await Promise.all(users.map(callVia));
      expect(new Set(proxyless).size, 'users spread over both servers').toBe(2);
      expect(sidecarPicks).toEqual(proxyless);
    } finally {
      viaSidecar.close();
      await sidecar.proc.kill('SIGTERM');
    }
  });

  it('outlier detection: a server that starts failing is ejected, then comes back', async () => {
    await applied(
      `${destinationRule(
        '    outlierDetection: { consecutive5xxErrors: 2, interval: 500ms, baseEjectionTime: 2s, maxEjectionPercent: 100 }',
      )}---${virtualService('    - route: [{ destination: { host: greeter } }]\n')}`,
    );
    await eventually('round robin over both again', async () => {
      const t = await tally(10);
      return ((t.v1 ?? 0) > 0 && (t.v2 ?? 0) > 0) || JSON.stringify(t);
    });
    failing.add('v2');
    try {
      // gRPC looks at the last interval's calls: more than half of at least two failed, so v2 is ejected.
      await eventually('v2 ejected', async () => {
        const t = await tally(10);
        return t.v1 === 10 || JSON.stringify(t);
      });
      const v2Hits = hits.v2 ?? 0;
      expect(await tally(20)).toEqual({ v1: 20 });
      expect(hits.v2 ?? 0).toBe(v2Hits);
    } finally {
      failing.delete('v2');
    }
    await eventually('v2 back after its ejection time', async () => {
      const t = await tally(10);
      return (t.v2 ?? 0) > 0 || JSON.stringify(t);
    });
  });

  it('http2MaxRequests: calls beyond the limit in flight are refused at once (gRPC circuit breaking), not queued', async () => {
    await applied(
      `${destinationRule('    connectionPool: { http: { http2MaxRequests: 2 } }')}---${virtualService(
        '    - route: [{ destination: { host: greeter } }]\n',
      )}`,
    );
    hold.on = true;
    try {
      // The limit reaches the client with the cluster: two calls held, the third refused.
      await eventually('the limit in force', async () => {
        const calls = [attempt(), attempt()];
        await eventually('two calls at the servers', async () => hold.waiting.length === 2, 5000);
        let third: string | undefined;
        const thirdCall = attempt().then((r) => {
          third = r;
        });
        // Refused at once under the limit; held like the others while the old config is in force.
        await eventually(
          'the third call refused or held',
          async () => third !== undefined || hold.waiting.length === 3,
          5000,
        );
        for (const release of hold.waiting.splice(0)) release();
        await Promise.all([...calls, thirdCall]);
        return third === `code ${grpc.status.UNAVAILABLE}` || `third call: ${third}`;
      });
      const held = [attempt(), attempt()];
      await eventually('two calls in flight', async () => hold.waiting.length === 2, 5000);
      const refused = await Promise.all([attempt(), attempt(), attempt()]);
      expect(refused).toEqual(Array(3).fill(`code ${grpc.status.UNAVAILABLE}`));
      expect(hold.waiting.length).toBe(2);
      for (const release of hold.waiting.splice(0)) release();
      for (const r of await Promise.all(held)) expect(['v1', 'v2']).toContain(r);
    } finally {
      hold.on = false;
      for (const release of hold.waiting.splice(0)) release();
    }
  });
});
