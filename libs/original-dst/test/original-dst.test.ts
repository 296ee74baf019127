import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  getOriginalDestination,
  OriginalDestinationError,
  originalDestination,
  socketFd,
} from '../src/index.js';

/** Accepts one connection on `host` and reports what the server side's socket says. */
async function acceptOne<T>(host: string, connectHost: string, look: (s: net.Socket) => T): Promise<T> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, host, r));
  const port = (server.address() as net.AddressInfo).port;
  try {
    const accepted = new Promise<T>((resolve, reject) =>
      server.once('connection', (s) => {
        try {
          resolve(look(s));
        } catch (err) {
          reject(err);
        } finally {
          s.destroy();
        }
      }),
    );
    const client = net.connect(port, connectHost);
    try {
      return await accepted;
    } finally {
      client.destroy();
    }
  } finally {
    await new Promise((r) => server.close(r));
  }
}

describe('original destination of a connection that was not redirected', () => {
  it('is the local IPv4 address and port', async () => {
    const { port, dst } = await acceptOne('127.0.0.1', '127.0.0.1', (s) => ({
      port: s.localPort,
      dst: originalDestination(s),
    }));
    expect(dst).toEqual({ address: '127.0.0.1', port, family: 'IPv4', redirected: false });
  });

  it('is the local IPv6 address and port', async () => {
    const { port, dst } = await acceptOne('::1', '::1', (s) => ({
      port: s.localPort,
      dst: originalDestination(s),
    }));
    expect(dst).toEqual({ address: '::1', port, family: 'IPv6', redirected: false });
  });

  it('is reported as IPv4 for an IPv4 client of a dual-stack socket', async () => {
    const { port, dst } = await acceptOne('::', '127.0.0.1', (s) => ({
      port: s.localPort,
      dst: originalDestination(s),
    }));
    expect(dst).toEqual({ address: '127.0.0.1', port, family: 'IPv4', redirected: false });
  });
});

describe('bad input gets a clear error, never a crash', () => {
  it('rejects what is not a file descriptor', () => {
    expect(() => getOriginalDestination(-1)).toThrow(RangeError);
    expect(() => getOriginalDestination(1.5)).toThrow(/non-negative integer/);
    expect(() => (getOriginalDestination as (x: unknown) => unknown)('3')).toThrow(TypeError);
  });

  it('names the failing call for a descriptor that is not a socket', () => {
    const file = path.join(os.tmpdir(), `original-dst-${process.pid}.txt`);
    const fd = fs.openSync(file, 'w');
    try {
      let caught: unknown;
      try {
        getOriginalDestination(fd);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(OriginalDestinationError);
      expect((caught as OriginalDestinationError).code).toBe('ENOTSOCK');
      expect((caught as Error).message).toMatch(/getsockname\(fd \d+\)/);
    } finally {
      fs.closeSync(fd);
      fs.rmSync(file, { force: true });
    }
  });

  it('says so for a socket that is already closed', async () => {
    const err = await acceptOne('127.0.0.1', '127.0.0.1', (s) => {
      s.destroy();
      try {
        socketFd(s);
        return undefined;
      } catch (e) {
        return e as OriginalDestinationError;
      }
    });
    expect(err).toBeInstanceOf(OriginalDestinationError);
    expect(err?.code).toBe('ENOTCONN');
  });
});

/**
 * A real REDIRECT: a child Node process inside a network namespace this test
 * creates listens on loopback, iptables (nat OUTPUT) redirects connections to
 * a made-up address there, and the child reports what the addon recovered.
 */
describe('needs root: creates a network namespace with iptables REDIRECT rules', () => {
  const ns = `mzod-${process.pid}`;
  const dist = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'index.js');
  let created = false;

  afterAll(() => {
    if (created) spawnSync('ip', ['netns', 'del', ns], { timeout: 10_000 });
  });

  function sh(cmd: string, args: string[]): void {
    execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
  }

  it('recovers the IPv4 and IPv6 destinations the connections were sent to', () => {
    if (process.getuid?.() !== 0)
      throw new Error(
        'this test needs root (it creates a network namespace and iptables rules); run as root',
      );
    for (const tool of ['ip', 'iptables', 'ip6tables']) {
      const found = spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
      if (!found) throw new Error(`this test needs ${tool} (apt-get install -y iptables iproute2)`);
    }
    if (!fs.existsSync(dist)) throw new Error(`build the package first: ${dist} is missing`);
    sh('ip', ['netns', 'add', ns]);
    created = true;
    const inNs = (cmd: string) => sh('ip', ['netns', 'exec', ns, 'sh', '-c', cmd]);
    inNs('ip link set lo up');
    inNs('ip link add d0 type veth peer name d1 && ip link set d0 up && ip link set d1 up');
    inNs('ip addr add 10.253.200.1/24 dev d0 && ip -6 addr add fd00:253::1/64 dev d0 nodad');
    inNs('iptables -t nat -A OUTPUT -p tcp -d 10.253.200.9 --dport 7777 -j REDIRECT --to-ports 15001');
    inNs('ip6tables -t nat -A OUTPUT -p tcp -d fd00:253::9 --dport 7777 -j REDIRECT --to-ports 15001');
    const child = `
      import net from 'node:net';
      import { originalDestination } from ${JSON.stringify(dist)};
      const out = {};
      async function probe(listenHost, target, key) {
        const server = net.createServer();
        await new Promise((r) => server.listen(15001, listenHost, r));
        const got = new Promise((r) => server.once('connection', (s) => { r(originalDestination(s)); s.destroy(); }));
        const c = net.connect(7777, target);
        c.on('error', () => {});
        out[key] = await got;
        c.destroy();
        await new Promise((r) => server.close(r));
      }
      await probe('0.0.0.0', '10.253.200.9', 'v4');
      await probe('::', 'fd00:253::9', 'v6');
      process.stdout.write(JSON.stringify(out));
    `;
    const run = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', child], {
      encoding: 'utf8',
      timeout: 15_000,
    });
    if (run.status !== 0) throw new Error(`child in ${ns} failed: ${run.stderr || run.error?.message}`);
    expect(JSON.parse(run.stdout)).toEqual({
      v4: { address: '10.253.200.9', port: 7777, family: 'IPv4', redirected: true },
      v6: { address: 'fd00:253::9', port: 7777, family: 'IPv6', redirected: true },
    });
  });
});
