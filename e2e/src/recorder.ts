import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';

/** What a recorder saw of one request: which connection carried it (client port) and the protocol. */
export interface Seen {
  port: number;
  version: string;
  path: string;
}

/**
 * A backend that records the connection and protocol of every request,
 * taking cleartext HTTP/1.1 and HTTP/2 (prior knowledge) on one port as a
 * sidecar's inbound listener does — it stands in for a peer sidecar when its
 * endpoint is labelled `security.istio.io/tlsMode: istio`. Requests to paths
 * containing `/hold` wait until the test releases them.
 */
export interface Recorder {
  port: number;
  seen: Seen[];
  held: (() => void)[];
  /** Client ports of connections that have closed. */
  closed: Set<number>;
  /** Distinct connections among the requests seen since index `from`. */
  connections(from?: number): number;
  close(): Promise<void>;
}

export async function startRecorder(host = '127.0.0.1', port = 0): Promise<Recorder> {
  const sockets = new Set<net.Socket>();
  const r: Recorder = {
    port: 0,
    seen: [],
    held: [],
    closed: new Set(),
    connections: (from = 0) => new Set(r.seen.slice(from).map((x) => x.port)).size,
    close: async () => {},
  };
  const handler = (
    req: http.IncomingMessage | http2.Http2ServerRequest,
    res: http.ServerResponse | http2.Http2ServerResponse,
  ) => {
    r.seen.push({ port: req.socket.remotePort ?? 0, version: req.httpVersion, path: req.url ?? '' });
    req.on('data', () => {});
    req.on('end', () => {
      const answer = () => res.end(JSON.stringify({ version: req.httpVersion, path: req.url }));
      if (req.url?.includes('/hold')) r.held.push(answer);
      else answer();
    });
  };
  const h1 = http.createServer(handler);
  const h2 = http2.createServer(handler);
  const server = net.createServer((socket) => {
    sockets.add(socket);
    const client = socket.remotePort ?? 0;
    socket.once('close', () => {
      sockets.delete(socket);
      r.closed.add(client);
    });
    socket.on('error', () => {});
    socket.once('readable', () => {
      const head: Buffer | null = socket.read();
      if (head) socket.unshift(head);
      (head?.subarray(0, 3).toString() === 'PRI' ? h2 : h1).emit('connection', socket);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  r.port = (server.address() as net.AddressInfo).port;
  r.close = () =>
    new Promise((resolve) => {
      for (const release of r.held.splice(0)) release();
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return r;
}
