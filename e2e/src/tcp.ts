import net from 'node:net';

/**
 * A TCP connection through a sidecar in local mode, as an app behind
 * HTTP_PROXY opens one: CONNECT `target` to the outbound port; resolves with
 * the socket once the sidecar answered 200 (rejects with its status line).
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
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`CONNECT ${target}: no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    let head = Buffer.alloc(0);
    const onData = (d: Buffer) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      clearTimeout(timer);
      s.off('data', onData);
      const status = head.subarray(0, end).toString().split('\r\n')[0]!;
      if (!status.startsWith('HTTP/1.1 200')) {
        s.destroy();
        reject(new Error(`CONNECT ${target} refused: ${status}`));
        return;
      }
      const rest = head.subarray(end + 4);
      if (rest.length) s.unshift(rest);
      resolve(s);
    };
    s.on('data', onData);
    s.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
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
    s.write(text);
  });
}
