import net from 'node:net';

/** A TCP server that greets each connection with one line (`greeting\n`), then echoes what it gets. */
export async function startTcpEcho(greeting: string): Promise<{ port: number; close: () => Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((s) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    s.on('error', () => s.destroy());
    s.write(`${greeting}\n`);
    s.pipe(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () =>
      new Promise((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/**
 * One TCP conversation through a client sidecar, as an app behind HTTP_PROXY
 * has it (HTTP CONNECT): reads the server's greeting line, sends `payload`,
 * waits for its echo and closes. Resolves with the greeting; rejects with the
 * reason when the tunnel is refused or nothing comes back within 5 s.
 */
export function tcpExchange(outboundPort: number, target: string, payload: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(outboundPort, '127.0.0.1', () =>
      s.write(`CONNECT ${target} HTTP/1.1\r\nhost: ${target}\r\n\r\n`),
    );
    let data = '';
    let tunneled = false;
    let greeting: string | undefined;
    const fail = (why: string) => {
      clearTimeout(timer);
      s.destroy();
      reject(new Error(why));
    };
    const timer = setTimeout(
      () => fail(`no echo through the tunnel to ${target}: ${JSON.stringify(data)}`),
      5000,
    );
    s.on('data', (d: Buffer) => {
      data += d.toString();
      if (!tunneled) {
        const end = data.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!data.startsWith('HTTP/1.1 200')) return fail(`CONNECT refused: ${data.split('\r\n')[0]}`);
        tunneled = true;
        data = data.slice(end + 4);
      }
      if (greeting === undefined) {
        const nl = data.indexOf('\n');
        if (nl < 0) return;
        greeting = data.slice(0, nl);
        data = data.slice(nl + 1);
        s.write(payload);
      }
      if (data === payload) {
        clearTimeout(timer);
        s.end();
      }
    });
    s.once('close', () => {
      if (greeting !== undefined && data === payload) resolve(greeting);
    });
    s.once('error', (err) => fail(err.message));
  });
}
