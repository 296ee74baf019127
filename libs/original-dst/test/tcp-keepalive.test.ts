import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { OriginalDestinationError, setTcpKeepalive, socketFd, tcpKeepalive } from '../src/index.js';

/** A connected client socket to a throwaway server, closed after `use`. */
async function withConnection<T>(use: (client: net.Socket) => T): Promise<T> {
  const server = net.createServer((s) => s.on('error', () => {}));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  try {
    await new Promise<void>((resolve, reject) => {
      client.once('connect', resolve);
      client.once('error', reject);
    });
    return use(client);
  } finally {
    client.destroy();
    await new Promise((r) => server.close(r));
  }
}

describe('TCP keepalive on a real socket', () => {
  it('sets idle time, probe interval and probe count, read back from the kernel', async () => {
    const got = await withConnection((c) => {
      setTcpKeepalive(c, { time: 7, interval: 3, probes: 4 });
      return tcpKeepalive(c);
    });
    expect(got).toEqual({ enabled: true, time: 7, interval: 3, probes: 4 });
  });

  it('changes only what is given, keeping the rest', async () => {
    const got = await withConnection((c) => {
      setTcpKeepalive(c, { time: 11, interval: 5, probes: 2 });
      setTcpKeepalive(c, { probes: 6 });
      return tcpKeepalive(c);
    });
    expect(got).toEqual({ enabled: true, time: 11, interval: 5, probes: 6 });
  });

  it('refuses values the kernel would not take, naming the option', async () => {
    await withConnection((c) => {
      expect(() => setTcpKeepalive(c, { interval: 0 })).toThrow(
        'setTcpKeepalive: interval must be a whole number from 1 to 32767, got 0',
      );
      expect(() => setTcpKeepalive(c, { probes: 1.5 })).toThrow(RangeError);
      expect(() => setTcpKeepalive(c, { time: '7' as unknown as number })).toThrow(TypeError);
    });
  });

  it('reports a closed socket as one error', async () => {
    const closed = await withConnection((c) => {
      c.destroy();
      return c;
    });
    expect(() => setTcpKeepalive(closed, { time: 1 })).toThrow(OriginalDestinationError);
    expect(() => socketFd(closed)).toThrow('the socket is closed (it has no handle)');
  });
});
