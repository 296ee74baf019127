import net from 'node:net';

/**
 * The PROXY protocol (HAProxy's, versions 1 and 2), as Envoy's
 * `envoy.filters.listener.proxy_protocol` reads it: a load balancer in front
 * of the gateway prefixes each connection with the client's real addresses,
 * which then stand in for the socket's own (XFF, filter chain matching,
 * access logs).
 */
export interface ProxyHeader {
  /** The original client, unless the sender said LOCAL/UNKNOWN (a health check: keep the socket's addresses). */
  source?: { address: string; port: number };
  destination?: { address: string; port: number };
}

export type ProxyParse =
  | { header: ProxyHeader; length: number }
  | { incomplete: true }
  /** `absent`: the bytes are not a PROXY header at all (a client that connected directly). */
  | { error: string; absent?: boolean };

export type ProxyRead = ProxyHeader | { error: string; absent?: boolean };

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ');
/** The spec's bound on a v1 line, CRLF included. */
const V1_MAX = 107;
/** A v2 header may carry TLVs; anything longer than this is not a header we accept (bounded memory). */
const V2_MAX = 4096;

function startsWithPrefixOf(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length);
  return buf.subarray(0, n).equals(prefix.subarray(0, n));
}

function parseV1(buf: Buffer): ProxyParse {
  const end = buf.indexOf('\r\n');
  if (end < 0)
    return buf.length >= V1_MAX ? { error: 'PROXY v1 line longer than 107 bytes' } : { incomplete: true };
  if (end + 2 > V1_MAX) return { error: 'PROXY v1 line longer than 107 bytes' };
  const parts = buf.subarray(0, end).toString('latin1').split(' ');
  if (parts[1] === 'UNKNOWN') return { header: {}, length: end + 2 };
  if (parts.length !== 6 || (parts[1] !== 'TCP4' && parts[1] !== 'TCP6'))
    return { error: `malformed PROXY v1 line "${parts.join(' ').slice(0, 60)}"` };
  const [, family, src, dst, sport, dport] = parts as [string, string, string, string, string, string];
  const want = family === 'TCP4' ? 4 : 6;
  const ports = [sport, dport].map(Number);
  if (net.isIP(src) !== want || net.isIP(dst) !== want)
    return { error: `PROXY v1 addresses are not ${family} addresses` };
  if (!ports.every((p) => Number.isInteger(p) && p >= 0 && p <= 65535) || !/^\d+$/.test(sport + dport))
    return { error: 'PROXY v1 ports are not port numbers' };
  return {
    header: { source: { address: src, port: ports[0]! }, destination: { address: dst, port: ports[1]! } },
    length: end + 2,
  };
}

function ipv6(bytes: Buffer): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  // net.BlockList and sockets print IPv6 compressed; normalise through the URL parser.
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

function parseV2(buf: Buffer): ProxyParse {
  if (buf.length < 16) return { incomplete: true };
  const version = buf[12]! >> 4;
  const command = buf[12]! & 0x0f;
  if (version !== 2) return { error: `PROXY v2 header with version ${version}` };
  if (command > 1) return { error: `PROXY v2 header with unknown command ${command}` };
  const length = 16 + buf.readUInt16BE(14);
  if (length > V2_MAX) return { error: `PROXY v2 header of ${length} bytes is too long` };
  if (buf.length < length) return { incomplete: true };
  // LOCAL (health checks from the balancer itself): the connection's own addresses stand.
  if (command === 0) return { header: {}, length };
  const family = buf[13]! >> 4;
  const body = buf.subarray(16, length);
  if (family === 1 && body.length >= 12) {
    const ip = (o: number) => [...body.subarray(o, o + 4)].join('.');
    return {
      header: {
        source: { address: ip(0), port: body.readUInt16BE(8) },
        destination: { address: ip(4), port: body.readUInt16BE(10) },
      },
      length,
    };
  }
  if (family === 2 && body.length >= 36) {
    return {
      header: {
        source: { address: ipv6(body.subarray(0, 16)), port: body.readUInt16BE(32) },
        destination: { address: ipv6(body.subarray(16, 32)), port: body.readUInt16BE(34) },
      },
      length,
    };
  }
  // AF_UNSPEC or AF_UNIX: nothing an IP listener can use; keep the socket's addresses.
  if (family === 0 || family === 3) return { header: {}, length };
  return { error: `PROXY v2 header with an address block too short for family ${family}` };
}

/** Parses a PROXY header at the start of `buf`. Pure, so it is tested on byte strings. */
export function parseProxyHeader(buf: Buffer): ProxyParse {
  if (buf.length === 0) return { incomplete: true };
  if (startsWithPrefixOf(buf, V2_SIGNATURE)) {
    return buf.length < V2_SIGNATURE.length ? { incomplete: true } : parseV2(buf);
  }
  if (startsWithPrefixOf(buf, V1_PREFIX)) {
    return buf.length < V1_PREFIX.length ? { incomplete: true } : parseV1(buf);
  }
  return { error: 'the connection does not start with a PROXY protocol header', absent: true };
}

/**
 * Reads the PROXY header off a new connection and puts back whatever followed
 * it, so the filter chain sees the client's stream from its first byte (and
 * all of it when there was no header: Envoy may allow that). Bounded in bytes
 * and time: a client that sends no header, a malformed one, or one too
 * slowly is answered with an error (Envoy closes the connection).
 */
export function readProxyHeader(socket: net.Socket, timeoutMs: number): Promise<ProxyRead> {
  return new Promise((resolve) => {
    let buf: Buffer = Buffer.alloc(0);
    let done = false;
    const finish = (result: ProxyRead, rest?: Buffer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.pause();
      if (rest?.length) socket.unshift(rest);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      const r = parseProxyHeader(buf);
      if ('incomplete' in r) return;
      if ('error' in r) finish(r, r.absent ? buf : undefined);
      else finish(r.header, buf.subarray(r.length));
    };
    const onEnd = () => finish({ error: 'the connection closed before its PROXY header' });
    // Nothing at all by the deadline may be a server-first protocol from a direct client.
    const timer = setTimeout(
      () => finish({ error: `no PROXY header within ${timeoutMs} ms`, absent: buf.length === 0 }),
      timeoutMs,
    );
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
  });
}

/** One end of a connection, as a PROXY header carries it. */
export interface ProxyEndpoint {
  readonly address: string;
  readonly port: number;
}

/** An IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) as the IPv4 address it is. */
function unmapped(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m ? m[1]! : address;
}

function ipv6Bytes(address: string): Buffer {
  const [head, tail] = address.includes('::') ? address.split('::') : [address, undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = [...left, ...Array(8 - left.length - right.length).fill('0'), ...right];
  const out = Buffer.alloc(16);
  for (const [i, g] of groups.entries()) out.writeUInt16BE(Number.parseInt(g || '0', 16), i * 2);
  return out;
}

/**
 * The PROXY header Envoy's upstream_proxy_protocol transport socket sends
 * first on a connection: the downstream's source and destination, in version
 * 1 (text) or 2 (binary). Addresses of different families (or not IP at all)
 * go out as v1 UNKNOWN / v2 LOCAL, as Envoy does.
 */
export function encodeProxyHeader(version: 1 | 2, source: ProxyEndpoint, destination: ProxyEndpoint): Buffer {
  const src = unmapped(source.address);
  const dst = unmapped(destination.address);
  const family = net.isIP(src);
  const same = family !== 0 && family === net.isIP(dst);
  if (version === 1) {
    if (!same) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
    const proto = family === 4 ? 'TCP4' : 'TCP6';
    return Buffer.from(`PROXY ${proto} ${src} ${dst} ${source.port} ${destination.port}\r\n`, 'latin1');
  }
  if (!same) return Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
  const addresses =
    family === 4
      ? Buffer.concat([Buffer.from(src.split('.').map(Number)), Buffer.from(dst.split('.').map(Number))])
      : Buffer.concat([ipv6Bytes(src), ipv6Bytes(dst)]);
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(source.port, 0);
  ports.writeUInt16BE(destination.port, 2);
  const head = Buffer.alloc(4);
  head[0] = 0x21; // version 2, PROXY
  head[1] = family === 4 ? 0x11 : 0x21; // AF_INET/AF_INET6, STREAM
  head.writeUInt16BE(addresses.length + ports.length, 2);
  return Buffer.concat([V2_SIGNATURE, head, addresses, ports]);
}
