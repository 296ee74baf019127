import net from 'node:net';

/** Asks the kernel for a free TCP port on `host` by binding port 0 and releasing it. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** True when something accepts connections on host:port right now. */
export function isPortInUse(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.unref();
    server.once('error', () => resolve(true));
    server.listen(port, host, () => server.close(() => resolve(false)));
  });
}

/**
 * Hands out free ports that are also distinct from every port it handed out
 * before. The kernel may give a just-released port again, and a process
 * started with it may not have bound it yet, so a launcher that starts many
 * processes takes all their ports from one allocator.
 */
export class PortAllocator {
  private readonly given = new Set<number>();

  constructor(private readonly host = '127.0.0.1') {}

  async take(): Promise<number> {
    for (let i = 0; i < 100; i++) {
      const port = await freePort(this.host);
      if (!this.given.has(port)) {
        this.given.add(port);
        return port;
      }
    }
    throw new Error(`no free port found on ${this.host}`);
  }

  async takeMany(count: number): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < count; i++) out.push(await this.take());
    return out;
  }

  /** Marks a port as in use (a well-known port chosen elsewhere) so it is never handed out. */
  reserve(port: number): void {
    this.given.add(port);
  }
}
