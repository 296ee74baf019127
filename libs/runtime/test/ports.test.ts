import net from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePort, isPortInUse, PortAllocator } from '../src/ports.js';

describe('ports', () => {
  it('finds a port nobody listens on, and sees it taken once a server binds it', async () => {
    const port = await freePort();
    expect(await isPortInUse(port)).toBe(false);
    const server = net.createServer();
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    try {
      expect(await isPortInUse(port)).toBe(true);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});

describe('PortAllocator', () => {
  it('never hands out the same port twice, even when the kernel offers it again', async () => {
    const ports = new PortAllocator();
    ports.reserve(15010);
    const taken = await ports.takeMany(40);
    expect(new Set(taken).size).toBe(40);
    expect(taken).not.toContain(15010);
  });
});
