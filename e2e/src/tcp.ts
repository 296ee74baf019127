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
 * A TCP connection through a sidecar in local mode, as an app behind
 * HTTP_PROXY opens one: CONNECT `target` to the outbound port; resolves with
 * the socket once the sidecar answered 200 (rejects with its status line, or
 * at once when the sidecar closes before answering).
 */
export function connectThroughSidecar(
  outbound: number,
  target: string,
  timeoutMs = 5000,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect(outbound, '127.0.0.1', () =>
      s.write(`CONNECT ${target} HTTP/1.1\r\nhost: ${target}\r\n\r\n`),
    );
    let head = Buffer.alloc(0);
    const settle = (err?: Error) => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('error', onError);
      s.off('close', onClose);
      if (!err) return;
      s.destroy();
      reject(err);
    };
    const timer = setTimeout(
      () => settle(new Error(`CONNECT ${target}: no answer within ${timeoutMs} ms`)),
      timeoutMs,
    );
    const onData = (d: Buffer) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      const status = head.subarray(0, end).toString().split('\r\n')[0]!;
      if (!status.startsWith('HTTP/1.1 200'))
        return settle(new Error(`CONNECT ${target} refused: ${status}`));
      // Paused with what came after the answer put back, so none of it is lost
      // before the caller listens (roundTrip and readLine resume it).
      s.pause();
      settle();
      const rest = head.subarray(end + 4);
      if (rest.length) s.unshift(rest);
      resolve(s);
    };
    const onError = (err: Error) => settle(err);
    const onClose = () =>
      settle(
        new Error(
          `CONNECT ${target}: closed before CONNECT was answered: ${JSON.stringify(head.toString())}`,
        ),
      );
    s.on('data', onData);
    s.once('error', onError);
    s.once('close', onClose);
  });
}

/** Writes `text` and collects what comes back until `bytes` arrived or the connection closed. */
export function roundTrip(
  s: net.Socket,
  text: string,
  bytes = text.length,
): Promise<{ got: string; closed: boolean }> {
  return new Promise((resolve) => {
    let got = '';
    const onData = (d: Buffer) => {
      got += d.toString();
      if (got.length >= bytes) {
        s.off('data', onData);
        resolve({ got, closed: false });
      }
    };
    s.on('data', onData);
    s.once('close', () => resolve({ got, closed: true }));
    s.resume();
    s.write(text);
  });
}

/**
 * The first line the server sends on `s` (without its newline); rejects at
 * once when the connection closes before one, or after `timeoutMs`.
 */
export function readLine(s: net.Socket, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    const done = (err?: Error) => {
      clearTimeout(timer);
      s.off('data', onData);
      s.off('error', onError);
      s.off('close', onClose);
      if (err) {
        s.destroy();
        reject(err);
      }
    };
    const timer = setTimeout(
      () => done(new Error(`no line within ${timeoutMs} ms: ${JSON.stringify(data)}`)),
      timeoutMs,
    );
    const onData = (d: Buffer) => {
      data += d.toString();
      const nl = data.indexOf('\n');
      if (nl < 0) return;
      s.pause();
      done();
      const rest = data.slice(nl + 1);
      if (rest) s.unshift(Buffer.from(rest));
      resolve(data.slice(0, nl));
    };
    const onError = (err: Error) => done(err);
    const onClose = () => done(new Error(`closed through the tunnel: ${JSON.stringify(data)}`));
    s.on('data', onData);
    s.once('error', onError);
    s.once('close', onClose);
    s.resume();
  });
}

/**
 * A TCP connection through a sidecar (HTTP CONNECT): resolves with the first
 * line the server sends, then closes; rejects at once when the tunnel is
 * refused or closed before a line.
 */
export async function tcpThroughSidecar(outbound: number, target: string): Promise<string> {
  const s = await connectThroughSidecar(outbound, target);
  const line = await readLine(s);
  s.end();
  s.resume();
  return line;
}

/**
 * One TCP conversation through a client sidecar (HTTP CONNECT): reads the
 * server's greeting line, sends `payload`, waits for its echo and closes,
 * resolving with the greeting once the connection has closed; rejects with
 * the reason when the tunnel is refused or nothing comes back within 5 s.
 */
export async function tcpExchange(outboundPort: number, target: string, payload: string): Promise<string> {
  const s = await connectThroughSidecar(outboundPort, target);
  const greeting = await readLine(s);
  const timer = setTimeout(() => s.destroy(), 5000);
  const echo = await roundTrip(s, payload);
  clearTimeout(timer);
  if (echo.closed || echo.got !== payload) {
    s.destroy();
    throw new Error(`no echo through the tunnel to ${target}: ${JSON.stringify(echo.got)}`);
  }
  await new Promise<void>((r) => {
    s.once('close', () => r());
    s.end();
  });
  return greeting;
}
