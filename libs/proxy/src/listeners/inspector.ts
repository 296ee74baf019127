import type net from 'node:net';

/** What the first bytes of a connection say (Envoy's tls_inspector and http_inspector). */
export interface Inspection {
  transportProtocol: 'tls' | 'raw_buffer';
  serverName?: string;
  /** TLS ALPN offers, or the detected plaintext HTTP version (`http/1.1`, `h2c`). */
  applicationProtocols: string[];
}

const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
const HTTP1_METHOD =
  /^(GET|HEAD|POST|PUT|DELETE|CONNECT|OPTIONS|TRACE|PATCH|PROPFIND|PROPPATCH|MKCOL|COPY|MOVE|LOCK|UNLOCK|REPORT|SEARCH|PURGE) /;
/** Enough for any ClientHello we care about (Envoy's tls_inspector reads up to 16 KiB). */
const MAX_INSPECT_BYTES = 16 * 1024;

/**
 * Decides from the bytes so far; undefined means "need more". Pure, so it is
 * tested on captured handshakes without sockets.
 */
export function classify(buf: Buffer): Inspection | undefined {
  if (buf.length === 0) return undefined;
  if (buf[0] === 0x16) {
    const hello = parseClientHello(buf);
    if (hello === 'incomplete')
      return buf.length >= MAX_INSPECT_BYTES
        ? { transportProtocol: 'tls', applicationProtocols: [] }
        : undefined;
    if (hello)
      return { transportProtocol: 'tls', serverName: hello.serverName, applicationProtocols: hello.alpn };
    return { transportProtocol: 'raw_buffer', applicationProtocols: [] };
  }
  const n = Math.min(buf.length, H2_PREFACE.length);
  if (buf.subarray(0, n).equals(H2_PREFACE.subarray(0, n))) {
    return n === H2_PREFACE.length
      ? { transportProtocol: 'raw_buffer', applicationProtocols: ['h2c'] }
      : undefined;
  }
  const head = buf.subarray(0, Math.min(buf.length, 4096)).toString('latin1');
  if (HTTP1_METHOD.test(head)) {
    const eol = head.indexOf('\r\n');
    if (eol < 0)
      return buf.length >= 4096 ? { transportProtocol: 'raw_buffer', applicationProtocols: [] } : undefined;
    const line = head.slice(0, eol);
    return {
      transportProtocol: 'raw_buffer',
      applicationProtocols: /HTTP\/1\.[01]$/.test(line) ? ['http/1.1'] : [],
    };
  }
  // A prefix of a method name might still become HTTP; anything else is opaque.
  if (buf.length < 8 && /^[A-Z]+$/.test(buf.toString('latin1'))) return undefined;
  return { transportProtocol: 'raw_buffer', applicationProtocols: [] };
}

/** SNI and ALPN from a TLS ClientHello; 'incomplete' when more bytes are needed; undefined when it is not one. */
export function parseClientHello(
  buf: Buffer,
): { serverName?: string; alpn: string[] } | 'incomplete' | undefined {
  if (buf.length < 5) return 'incomplete';
  if (buf[0] !== 0x16 || buf[1] !== 0x03) return undefined;
  const recordLen = buf.readUInt16BE(3);
  if (buf.length < 5 + recordLen) return 'incomplete';
  let p = 5;
  if (buf[p] !== 0x01) return undefined; // handshake type ClientHello
  const helloLen = buf.readUIntBE(p + 1, 3);
  const end = Math.min(p + 4 + helloLen, 5 + recordLen);
  p += 4 + 2 + 32; // type+len, version, random
  if (p >= end) return undefined;
  p += 1 + buf[p]!; // session id
  if (p + 2 > end) return undefined;
  p += 2 + buf.readUInt16BE(p); // cipher suites
  if (p + 1 > end) return undefined;
  p += 1 + buf[p]!; // compression methods
  const out: { serverName?: string; alpn: string[] } = { alpn: [] };
  if (p + 2 > end) return out;
  const extEnd = Math.min(end, p + 2 + buf.readUInt16BE(p));
  p += 2;
  while (p + 4 <= extEnd) {
    const type = buf.readUInt16BE(p);
    const len = buf.readUInt16BE(p + 2);
    const body = buf.subarray(p + 4, Math.min(p + 4 + len, extEnd));
    if (type === 0x0000 && body.length >= 5) {
      // server_name: list length, then (type 0 = host_name, length, name)
      const nameLen = body.readUInt16BE(3);
      if (body[2] === 0)
        out.serverName = body
          .subarray(5, 5 + nameLen)
          .toString('latin1')
          .toLowerCase();
    } else if (type === 0x0010 && body.length >= 2) {
      let q = 2;
      while (q < body.length) {
        const l = body[q]!;
        out.alpn.push(body.subarray(q + 1, q + 1 + l).toString('latin1'));
        q += 1 + l;
      }
    }
    p += 4 + len;
  }
  return out;
}

/**
 * Reads a connection's first bytes until they say what it is (or the
 * timeout passes — server-first protocols send nothing), then puts them back
 * so the chosen filter chain sees the stream from its start.
 */
export function inspect(socket: net.Socket, timeoutMs: number): Promise<Inspection> {
  return new Promise((resolve) => {
    let buf: Buffer = Buffer.alloc(0);
    let done = false;
    const finish = (result: Inspection) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.off('close', onEnd);
      socket.pause();
      if (buf.length) socket.unshift(buf);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
      const r = classify(buf);
      if (r) finish(r);
    };
    const onEnd = () =>
      finish(classify(buf) ?? { transportProtocol: 'raw_buffer', applicationProtocols: [] });
    const timer = setTimeout(onEnd, timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
  });
}
