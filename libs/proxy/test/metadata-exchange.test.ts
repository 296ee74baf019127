import net from 'node:net';
import tls from 'node:tls';
import {
  createCsr,
  createRootCa,
  exportPrivateKeyPem,
  formatSpiffeId,
  generateKeyPair,
  issueWorkloadCertificate,
  parseCsr,
} from '@mizzen/pki';
import { TypeUrl, type XdsNode } from '@mizzen/xds';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { readPeerExchange } from '../src/listeners/peer-exchange.js';
import type { TcpConnectionRecord } from '../src/observe/records.js';
import {
  EXCHANGE_MAGIC,
  ExchangeHeaderReader,
  type ExchangeRead,
  encodeExchangeHeader,
  MAX_EXCHANGE_PAYLOAD_BYTES,
} from '../src/observe/tcp-metadata-exchange.js';
import { SecretStore } from '../src/security/secret-store.js';
import { outboundListeners, PASSTHROUGH, ProxyHarness, staticCluster, svcRoutes, TCP } from './harness.js';

/**
 * Istio's TCP metadata exchange on the wire: the header this proxy writes,
 * checked byte by byte against the protobuf encoding (not against our own
 * decoder), headers an Envoy would write read back whatever their chunking,
 * and peers that do not speak it left alone.
 */

const NODE: XdsNode = {
  id: 'sidecar~127.0.0.1~reviews-v2.default~default.svc.cluster.local',
  metadata: {
    NAME: 'reviews-v2-7d9c',
    NAMESPACE: 'default',
    WORKLOAD_NAME: 'reviews-v2',
    SERVICE_ACCOUNT: 'bookinfo-reviews',
    CLUSTER_ID: 'Kubernetes',
    LABELS: {
      app: 'reviews',
      version: 'v2',
      'service.istio.io/canonical-name': 'reviews',
      'service.istio.io/canonical-revision': 'v2',
    },
    // Not part of what a proxy tells its peers.
    MIZZEN_OUTBOUND_PORT: 15001,
  },
};

// A minimal protobuf writer, so the expected bytes do not come from the code under test.
function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}
function field(n: number, bytes: Buffer | string): Buffer {
  const b = typeof bytes === 'string' ? Buffer.from(bytes) : bytes;
  return Buffer.concat([varint((n << 3) | 2), varint(b.length), b]);
}
type Json = string | { [k: string]: Json };
/** google.protobuf.Struct of strings and nested structs: map entries (1), Value string (3) or struct (5). */
function struct(obj: Record<string, Json>): Buffer {
  return Buffer.concat(
    Object.entries(obj).map(([k, v]) =>
      field(
        1,
        Buffer.concat([field(1, k), field(2, typeof v === 'string' ? field(3, v) : field(5, struct(v)))]),
      ),
    ),
  );
}
function any(typeUrl: string, value: Buffer): Buffer {
  return Buffer.concat([field(1, typeUrl), field(2, value)]);
}
function header(payload: Buffer, magic = EXCHANGE_MAGIC): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32BE(magic, 0);
  h.writeUInt32BE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

/** What an Istio sidecar (Envoy's metadata_exchange filter) writes for productpage-v1. */
const ENVOY_HEADER = header(
  any(
    'type.googleapis.com/google.protobuf.Struct',
    struct({
      'x-envoy-peer-metadata': {
        CLUSTER_ID: 'Kubernetes',
        LABELS: {
          app: 'productpage',
          'service.istio.io/canonical-name': 'productpage',
          'service.istio.io/canonical-revision': 'v1',
          version: 'v1',
        },
        NAME: 'productpage-v1-5d4f',
        NAMESPACE: 'bookinfo',
        OWNER: 'kubernetes://apis/apps/v1/namespaces/bookinfo/deployments/productpage-v1',
        WORKLOAD_NAME: 'productpage-v1',
      },
      'x-envoy-peer-metadata-id': 'sidecar~10.0.0.7~productpage-v1-5d4f.bookinfo~bookinfo.svc.cluster.local',
    }),
  ),
);

/** Feeds `bytes` to a reader in chunks of `size`, returning the first answer that is not `need-more`. */
function readInChunks(bytes: Buffer, size: number): ExchangeRead {
  const reader = new ExchangeHeaderReader();
  for (let i = 0; i < bytes.length; i += size) {
    const r = reader.push(bytes.subarray(i, i + size));
    if (r.state !== 'need-more') return r;
  }
  return reader.ended();
}

describe('metadata exchange header (istio-peer-exchange)', () => {
  it("writes the magic, the length and an Any of a Struct with the node's metadata and id, keys sorted", () => {
    const bytes = encodeExchangeHeader(NODE);
    expect(bytes.readUInt32BE(0)).toBe(0x3d230467);
    expect(bytes.readUInt32BE(4)).toBe(bytes.length - 8);
    const expected = any(
      'type.googleapis.com/google.protobuf.Struct',
      struct({
        'x-envoy-peer-metadata': {
          CLUSTER_ID: 'Kubernetes',
          LABELS: {
            app: 'reviews',
            'service.istio.io/canonical-name': 'reviews',
            'service.istio.io/canonical-revision': 'v2',
            version: 'v2',
          },
          NAME: 'reviews-v2-7d9c',
          NAMESPACE: 'default',
          SERVICE_ACCOUNT: 'bookinfo-reviews',
          WORKLOAD_NAME: 'reviews-v2',
        },
        'x-envoy-peer-metadata-id': NODE.id,
      }),
    );
    expect(bytes.subarray(8).toString('hex')).toBe(expected.toString('hex'));
  });

  it("reads an Envoy sidecar's header however it is split, and hands back the application's bytes after it", () => {
    const wire = Buffer.concat([ENVOY_HEADER, Buffer.from('PING\r\n')]);
    for (const size of [1, 3, 8, 9, wire.length]) {
      const r = readInChunks(wire, size);
      expect(r.state, `chunks of ${size}`).toBe('exchanged');
      if (r.state !== 'exchanged') continue;
      expect(r.peer).toEqual({
        id: 'sidecar~10.0.0.7~productpage-v1-5d4f.bookinfo~bookinfo.svc.cluster.local',
        name: 'productpage-v1-5d4f',
        namespace: 'bookinfo',
        workload: 'productpage-v1',
        serviceAccount: undefined,
        clusterId: 'Kubernetes',
        labels: {
          app: 'productpage',
          version: 'v1',
          'service.istio.io/canonical-name': 'productpage',
          'service.istio.io/canonical-revision': 'v1',
        },
      });
      // Whatever of the application's bytes came in the header's last chunk is not lost.
      const later = wire.subarray(Math.ceil(ENVOY_HEADER.length / size) * size);
      expect(Buffer.concat([r.rest, later]).toString()).toBe('PING\r\n');
    }
  });

  it('reads back what it writes', () => {
    const r = readInChunks(encodeExchangeHeader(NODE), 5);
    expect(r.state === 'exchanged' && r.peer).toMatchObject({
      id: NODE.id,
      workload: 'reviews-v2',
      namespace: 'default',
      serviceAccount: 'bookinfo-reviews',
      labels: { app: 'reviews', version: 'v2' },
    });
  });

  it('a peer that does not speak it: its bytes are all the application’s, none consumed', () => {
    const hello = Buffer.from('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    const r = readInChunks(hello, 4);
    expect(r).toMatchObject({ state: 'absent' });
    // Known as soon as 8 bytes are in: those are handed back, the rest follows on the stream.
    expect(r.state === 'absent' && r.rest.toString()).toBe('GET / HT');
    // Fewer bytes than a header, then the end: still the application's.
    const short = readInChunks(Buffer.from('hi'), 1);
    expect(short.state === 'absent' && short.rest.toString()).toBe('hi');
  });

  it('a header whose payload is not an Any leaves the payload to the application (as Envoy drains only the 8 bytes)', () => {
    const junk = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]);
    const r = readInChunks(Buffer.concat([header(junk), Buffer.from('x')]), 64);
    expect(r.state).toBe('absent');
    expect(r.state === 'absent' && [...r.rest]).toEqual([...junk, 0x78]);
  });

  it('an Any of something else, or a Struct without the metadata, is consumed and names no peer', () => {
    for (const payload of [
      any('type.googleapis.com/google.protobuf.Duration', Buffer.alloc(0)),
      any('type.googleapis.com/google.protobuf.Struct', struct({ other: 'x' })),
    ]) {
      const r = readInChunks(Buffer.concat([header(payload), Buffer.from('app')]), 16);
      expect(r.state).toBe('exchanged');
      expect(r.state === 'exchanged' && r.peer).toBeUndefined();
      expect(r.state === 'exchanged' && r.rest.toString()).toBe('app');
    }
  });

  it('a length beyond the bound is not buffered: no exchange', () => {
    const h = Buffer.alloc(8);
    h.writeUInt32BE(EXCHANGE_MAGIC, 0);
    h.writeUInt32BE(MAX_EXCHANGE_PAYLOAD_BYTES + 1, 4);
    const r = new ExchangeHeaderReader().push(Buffer.concat([h, Buffer.from('data')]));
    expect(r).toMatchObject({ state: 'absent' });
    expect(r.state === 'absent' && r.problem).toMatch(/more than the 65536 accepted/);
  });
});

describe('reading the header off a real connection', () => {
  const closers: (() => void)[] = [];
  afterEach(() => {
    for (const c of closers.splice(0)) c();
  });

  /** A connected socket pair on 127.0.0.1: [the reader's side, the writer's side]. */
  async function pair(): Promise<[net.Socket, net.Socket]> {
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    const side = await accepted;
    closers.push(() => {
      client.destroy();
      side.destroy();
      server.close();
    });
    return [side, client];
  }

  it('the header split across writes, then the application bytes flow on from the stream (paused, nothing lost)', async () => {
    const [reader, writer] = await pair();
    const result = readPeerExchange(reader);
    writer.write(ENVOY_HEADER.subarray(0, 5));
    await new Promise((r) => setTimeout(r, 20));
    writer.write(Buffer.concat([ENVOY_HEADER.subarray(5), Buffer.from('first ')]));
    const got = await result;
    expect(got.peer?.workload).toBe('productpage-v1');
    expect(reader.isPaused()).toBe(true);
    writer.end('second');
    const chunks: Buffer[] = [got.rest];
    reader.on('data', (c: Buffer) => chunks.push(c));
    reader.resume();
    await new Promise((r) => reader.once('end', r));
    expect(Buffer.concat(chunks).toString()).toBe('first second');
  });

  it('a peer that closes before a whole header: no peer, its bytes handed back', async () => {
    const [reader, writer] = await pair();
    const result = readPeerExchange(reader);
    writer.end(Buffer.from([0x3d, 0x23, 0x04]));
    const got = await result;
    expect(got.peer).toBeUndefined();
    expect([...got.rest]).toEqual([0x3d, 0x23, 0x04]);
  });
});

const DOWNSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext';
const UPSTREAM_TLS = 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext';
const ADS = { ads: {}, resource_api_version: 'V3' };
const MX_FILTER = {
  name: 'istio.metadata_exchange',
  typed_config: {
    '@type': 'type.googleapis.com/udpa.type.v1.TypedStruct',
    type_url: 'type.googleapis.com/envoy.tcp.metadataexchange.config.MetadataExchange',
    value: { protocol: 'istio-peer-exchange', enable_discovery: true },
  },
};
const MESH_TLS = {
  tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: ADS }],
  combined_validation_context: {
    default_validation_context: {},
    validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: ADS },
  },
};

type Ca = Awaited<ReturnType<typeof createRootCa>>;

async function workloadCert(ca: Ca, sa: string) {
  const keys = await generateKeyPair();
  const identity = { trustDomain: 'cluster.local', namespace: 'default', serviceAccount: sa };
  const csr = await parseCsr(await createCsr({ keys, uris: [formatSpiffeId(identity)] }));
  const cert = await issueWorkloadCertificate({ csr, identity, issuer: ca, ttlSeconds: 3600 });
  return { certChain: cert, privateKey: await exportPrivateKeyPem(keys.privateKey) };
}

/** Collects bytes from a socket until `until(bytes)` holds (or it closes); rejects after 5 s. */
function collect(s: net.Socket | tls.TLSSocket, until: (b: Buffer) => boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    let got = Buffer.alloc(0);
    const timer = setTimeout(() => reject(new Error(`only ${JSON.stringify(got.toString())}`)), 5000);
    const done = () => {
      clearTimeout(timer);
      s.off('data', onData);
      resolve(got);
    };
    const onData = (c: Buffer) => {
      got = Buffer.concat([got, c]);
      if (until(got)) done();
    };
    s.on('data', onData);
    s.once('close', done);
  });
}

/** What follows a metadata exchange header at the start of `bytes`, and the peer it named. */
function afterHeader(bytes: Buffer): { peer?: unknown; rest: string } {
  const r = new ExchangeHeaderReader().push(bytes);
  if (r.state !== 'exchanged') throw new Error(`no exchange header in ${bytes.toString('hex')}`);
  return { peer: r.peer, rest: r.rest.toString() };
}

/**
 * Through a real proxy fed over ADS, against peers that are plain Node TLS
 * endpoints playing an Istio sidecar (writing Envoy's header), or a client
 * that does not take part: what each side sees on the wire, and what the
 * proxy's observers are told.
 */
describe('the exchange through a real proxy (inbound chain and upstream cluster)', () => {
  const h = new ProxyHarness();
  const secrets = new SecretStore();
  const records: TcpConnectionRecord[] = [];
  const servers: net.Server[] = [];
  let ca: Ca;
  let caller: { certChain: string; privateKey: string };
  let inboundPort = 0;
  let plainChainPort = 0;
  let outboundTcpPort = 0;
  /** What the sidecar-like upstream received at the start of each connection. */
  const upstreamSaw: Buffer[] = [];

  beforeAll(async () => {
    ca = await createRootCa();
    caller = await workloadCert(ca, 'productpage');
    const server = await workloadCert(ca, 'reviews');
    secrets.setLocal('default', { kind: 'certificate', ...server });
    // The application behind the inbound chain: greets, then echoes.
    const app = net.createServer((s) => {
      s.on('error', () => s.destroy());
      s.write('hello\n');
      s.pipe(s);
    });
    // An upstream sidecar that speaks the exchange: writes Envoy's header, then answers "pong" to what follows ours.
    const peer = tls.createServer({
      cert: server.certChain,
      key: server.privateKey,
      ca: ca.certificate,
      requestCert: true,
      ALPNProtocols: ['istio-peer-exchange', 'h2', 'http/1.1'],
    });
    peer.on('secureConnection', (s) => {
      s.on('error', () => s.destroy());
      s.write(ENVOY_HEADER);
      void collect(s, (b) => b.toString().endsWith('ping')).then((b) => {
        upstreamSaw.push(b);
        s.end('pong');
      });
    });
    for (const srv of [app, peer]) {
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      servers.push(srv);
    }
    const port = (s: net.Server) => (s.address() as net.AddressInfo).port;
    [inboundPort, plainChainPort, outboundTcpPort] = await h.ports.takeMany(3);
    const tcpProxy = (cluster: string) => ({
      name: 'envoy.filters.network.tcp_proxy',
      typed_config: { '@type': TCP, stat_prefix: cluster, cluster },
    });
    await h.start(
      () => ({
        [TypeUrl.Cluster]: [
          staticCluster('app', [port(app)]),
          staticCluster('peer', [port(peer)], {
            filters: [MX_FILTER],
            transport_socket: {
              name: 'envoy.transport_sockets.tls',
              typed_config: {
                '@type': UPSTREAM_TLS,
                common_tls_context: {
                  ...MESH_TLS,
                  combined_validation_context: {
                    ...MESH_TLS.combined_validation_context,
                    default_validation_context: {
                      match_subject_alt_names: [{ exact: 'spiffe://cluster.local/ns/default/sa/reviews' }],
                    },
                  },
                  alpn_protocols: ['istio-peer-exchange', 'istio'],
                },
              },
            },
          }),
          PASSTHROUGH,
        ],
        [TypeUrl.Listener]: [
          ...outboundListeners(h.outbound),
          {
            name: 'inbound-tcp',
            traffic_direction: 'INBOUND',
            address: { socket_address: { address: '127.0.0.1', port_value: inboundPort } },
            filter_chains: [
              {
                filter_chain_match: { transport_protocol: 'tls' },
                transport_socket: {
                  name: 'envoy.transport_sockets.tls',
                  typed_config: {
                    '@type': DOWNSTREAM_TLS,
                    common_tls_context: {
                      ...MESH_TLS,
                      alpn_protocols: ['istio-peer-exchange', 'h2', 'http/1.1'],
                    },
                    require_client_certificate: true,
                  },
                },
                filters: [MX_FILTER, tcpProxy('app')],
              },
            ],
          },
          {
            // A TCP chain that takes no part in the exchange (its TLS offers no istio-peer-exchange).
            name: 'inbound-tcp-without-exchange',
            traffic_direction: 'INBOUND',
            address: { socket_address: { address: '127.0.0.1', port_value: plainChainPort } },
            listener_filters: [
              {
                name: 'envoy.filters.listener.tls_inspector',
                typed_config: {
                  '@type':
                    'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector',
                },
              },
            ],
            filter_chains: [
              {
                filter_chain_match: { transport_protocol: 'tls' },
                transport_socket: {
                  name: 'envoy.transport_sockets.tls',
                  typed_config: {
                    '@type': DOWNSTREAM_TLS,
                    common_tls_context: MESH_TLS,
                    require_client_certificate: true,
                  },
                },
                filters: [tcpProxy('app')],
              },
            ],
          },
          {
            name: 'outbound-tcp',
            traffic_direction: 'OUTBOUND',
            address: { socket_address: { address: '127.0.0.1', port_value: outboundTcpPort } },
            filter_chains: [{ filters: [tcpProxy('peer')] }],
          },
        ],
        [TypeUrl.RouteConfiguration]: [svcRoutes([])],
        [TypeUrl.Secret]: [
          { name: 'ROOTCA', validation_context: { trusted_ca: { inline_string: ca.certificate } } },
        ],
      }),
      secrets,
      { observer: { startTcp: () => ({ end: (r) => records.push(r) }) } },
    );
  });

  afterAll(async () => {
    await h.stop();
    for (const s of servers) s.close();
  });

  /** A mutual-TLS connection to the inbound chain offering `alpn`. */
  function callInbound(alpn: string[], port = inboundPort): Promise<tls.TLSSocket> {
    return new Promise((resolve, reject) => {
      const s = tls.connect({
        host: '127.0.0.1',
        port,
        ca: ca.certificate,
        cert: caller.certChain,
        key: caller.privateKey,
        checkServerIdentity: () => undefined,
        ...(alpn.length ? { ALPNProtocols: alpn } : {}),
      });
      s.once('secureConnect', () => resolve(s));
      s.once('error', reject);
    });
  }

  const endOf = async (s: net.Socket) => {
    s.end();
    await new Promise((r) => s.once('close', r));
  };

  it("inbound: a caller sidecar's header names it, ours comes back first, and the app sees only the bytes after it", async () => {
    records.length = 0;
    const s = await callInbound(['istio-peer-exchange', 'istio']);
    expect(s.alpnProtocol).toBe('istio-peer-exchange');
    s.write(Buffer.concat([ENVOY_HEADER, Buffer.from('ping')]));
    const got = await collect(s, (b) => b.toString().endsWith('hello\nping'));
    const { peer, rest } = afterHeader(got);
    expect(rest).toBe('hello\nping');
    expect(peer).toMatchObject({ id: h.nodeId, namespace: 'default', name: 'client' });
    await endOf(s);
    await h.until('the connection recorded', () => records.length === 1);
    expect(records[0]).toMatchObject({
      direction: 'inbound',
      peer: {
        workload: 'productpage-v1',
        namespace: 'bookinfo',
        labels: { app: 'productpage', version: 'v1' },
      },
      sourcePrincipal: 'spiffe://cluster.local/ns/default/sa/productpage',
      connectionSecurityPolicy: 'mutual_tls',
      // The headers are not the application's bytes.
      receivedBytes: 4,
      sentBytes: 'hello\nping'.length,
      responseFlags: '-',
    });
  });

  it('inbound: a caller that does not offer the ALPN gets no header and its bytes reach the app untouched', async () => {
    records.length = 0;
    const s = await callInbound([]);
    expect(s.alpnProtocol).toBe(false);
    s.write('ping');
    expect((await collect(s, (b) => b.toString() === 'hello\nping')).toString()).toBe('hello\nping');
    await endOf(s);
    await h.until('the connection recorded', () => records.length === 1);
    expect(records[0]!.peer).toBeUndefined();
    expect(records[0]).toMatchObject({ receivedBytes: 4, sentBytes: 10 });
  });

  it('inbound: a caller that agreed on the ALPN but sends no header loses none of its bytes', async () => {
    records.length = 0;
    const s = await callInbound(['istio-peer-exchange']);
    s.write('plain bytes, no magic');
    const got = await collect(s, (b) => b.toString().endsWith('no magic'));
    expect(afterHeader(got).rest).toBe('hello\nplain bytes, no magic');
    await endOf(s);
    await h.until('the connection recorded', () => records.length === 1);
    expect(records[0]!.peer).toBeUndefined();
    expect(records[0]!.receivedBytes).toBe('plain bytes, no magic'.length);
  });

  it('a chain that takes no part still accepts a sidecar offering the ALPN: no ALPN agreed (as Envoy), no header, bytes intact', async () => {
    records.length = 0;
    const s = await callInbound(['istio-peer-exchange', 'istio'], plainChainPort);
    expect(s.alpnProtocol).toBe(false);
    s.write('ping');
    expect((await collect(s, (b) => b.toString() === 'hello\nping')).toString()).toBe('hello\nping');
    await endOf(s);
    await h.until('the connection recorded', () => records.length === 1);
    expect(records[0]).toMatchObject({ receivedBytes: 4, sentBytes: 10, responseFlags: '-' });
    expect(records[0]!.peer).toBeUndefined();
  });

  it('outbound: the upstream sidecar gets our header first and names itself; the client sees only its answer', async () => {
    records.length = 0;
    const s = net.connect(outboundTcpPort, '127.0.0.1');
    s.write('ping');
    const got = await collect(s, (b) => b.toString() === 'pong');
    expect(got.toString()).toBe('pong');
    await new Promise((r) => s.once('close', r));
    const saw = afterHeader(upstreamSaw.at(-1)!);
    expect(saw.rest).toBe('ping');
    expect(saw.peer).toMatchObject({ id: h.nodeId, namespace: 'default' });
    await h.until('the connection recorded', () => records.length === 1);
    expect(records[0]).toMatchObject({
      direction: 'outbound',
      upstreamCluster: 'peer',
      peer: { workload: 'productpage-v1', clusterId: 'Kubernetes' },
      destinationPrincipal: 'spiffe://cluster.local/ns/default/sa/reviews',
      receivedBytes: 4,
      sentBytes: 4,
    });
  });
});
