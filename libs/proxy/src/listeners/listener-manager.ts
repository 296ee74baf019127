import fs from 'node:fs';
import net from 'node:net';
import type { Logger } from '@mizzen/runtime';
import { ConfigError } from '../config/errors.js';
import type { ListenerConfig } from '../config/listener.js';
import { localTlsProblems } from '../security/tls-provider.js';
import { socketPath } from '../upstream/host.js';
import { HttpProxyCaptureRuntime } from './http-proxy-capture.js';
import { ChainedListenerRuntime, type ListenerRuntime, type RuntimeDeps } from './runtimes.js';
import { capturesOriginalDst, TransparentCaptureRuntime } from './transparent-capture.js';

/** On shutdown, how long open connections may finish before the process moves on. */
const CLOSE_GRACE_MS = 1_000;

/** How the capture listener learns each connection's original destination. */
export type CaptureMode = 'http-proxy' | 'iptables';

/** A listening socket; connections go to whichever runtime is current, so a config swap never rebinds. */
class BoundSocket {
  constructor(
    readonly address: string,
    readonly port: number,
    private readonly server: net.Server,
    public runtime: ListenerRuntime,
  ) {
    server.on('connection', (socket) => {
      socket.setNoDelay(true);
      this.runtime.accept(socket);
    });
  }

  static bind(config: ListenerConfig, runtime: ListenerRuntime): Promise<BoundSocket> {
    const { address, port, pipe } = config;
    const server = net.createServer({ noDelay: true });
    const path = pipe ? socketPath(address) : undefined;
    // As Envoy does, a stale socket file left by an earlier run is removed before binding (not abstract names).
    if (path && !address.startsWith('@')) removeStaleSocket(path);
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      const listening = () => {
        server.off('error', reject);
        try {
          if (path && pipe?.mode && !address.startsWith('@')) fs.chmodSync(path, pipe.mode);
        } catch (err) {
          server.close();
          reject(err);
          return;
        }
        resolve(new BoundSocket(address, port, server, runtime));
      };
      if (path) server.listen({ path, exclusive: true }, listening);
      else server.listen({ host: address, port, exclusive: true }, listening);
    });
  }

  get boundPort(): number {
    const a = this.server.address();
    return typeof a === 'object' && a ? a.port : this.port;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

interface Active {
  config: ListenerConfig;
  runtime: ListenerRuntime;
  socket?: BoundSocket;
}

function sameJson(a: ListenerConfig, b: ListenerConfig): boolean {
  return JSON.stringify(a.json) === JSON.stringify(b.json);
}

/** Removes a socket file at `path` (never a regular file or directory: binding then fails with EADDRINUSE). */
function removeStaleSocket(path: string): void {
  try {
    if (fs.lstatSync(path).isSocket()) fs.unlinkSync(path);
  } catch {
    // Nothing there (or not ours to remove): bind reports what is wrong.
  }
}

function addrKey(address: string, port: number): string {
  return `${address}|${port}`;
}

/**
 * Owns the proxy's listeners. An LDS update is applied whole or not at all:
 * new sockets are bound first and a bind failure rolls them back and rejects
 * the update (NACK) with the old listeners untouched. Unchanged listeners
 * keep their runtime; changed ones get a new runtime on the same socket and
 * the old one drains its connections.
 */
export class ListenerManager {
  private active = new Map<string, Active>();
  private byPort = new Map<number, Active[]>();

  constructor(
    private readonly deps: RuntimeDeps,
    private readonly logger: Logger,
    private readonly captureMode: CaptureMode = 'http-proxy',
  ) {}

  async apply(configs: readonly ListenerConfig[]): Promise<void> {
    const names = new Set<string>();
    for (const c of configs) {
      if (names.has(c.name)) throw new ConfigError(`listener ${c.name}: duplicate listener name`);
      names.add(c.name);
    }
    // Sockets we may keep, by address: a listener that keeps its name and address, or takes over another's address.
    const reusable = new Map<string, BoundSocket>();
    for (const a of this.active.values())
      if (a.socket) reusable.set(addrKey(a.socket.address, a.socket.port), a.socket);

    const next = new Map<string, Active>();
    const created: BoundSocket[] = [];
    const failures: string[] = [];
    try {
      for (const config of configs) {
        const old = this.active.get(config.name);
        const runtime = old && sameJson(old.config, config) ? old.runtime : this.createRuntime(config);
        let socket: BoundSocket | undefined;
        if (config.bindToPort) {
          const key = addrKey(config.address, config.port);
          socket = reusable.get(key);
          if (socket) reusable.delete(key);
          else {
            try {
              socket = await BoundSocket.bind(config, runtime);
              created.push(socket);
            } catch (err) {
              const e = err as NodeJS.ErrnoException;
              failures.push(
                `listener ${config.name}: cannot bind ${config.pipe ? config.address : `${config.address}:${config.port}`}: ${e.code ?? e.message}`,
              );
              continue;
            }
          }
        }
        next.set(config.name, { config, runtime, socket });
      }
      if (failures.length) throw new ConfigError(failures.join('; '));
    } catch (err) {
      await Promise.all(created.map((s) => s.close()));
      throw err;
    }

    // Commit: from here nothing can fail.
    for (const a of next.values()) {
      // What the control plane left out of a new or changed listener, and why (a gateway server without its certificate).
      if (this.active.get(a.config.name)?.runtime === a.runtime) continue;
      for (const notice of a.config.notices)
        this.logger.warn(
          { listener: a.config.name, reason: notice },
          'gateway server left closed or overlapping',
        );
      // Chains whose certificate files cannot be read stay closed; the listener's other chains serve.
      for (const chain of a.config.chains) {
        for (const problem of chain.tls ? localTlsProblems(chain.tls, this.deps.secrets) : [])
          this.logger.warn(
            { listener: a.config.name, chain: chain.name, reason: problem },
            'TLS filter chain left closed until its files can be read',
          );
      }
    }
    const keptRuntimes = new Set([...next.values()].map((a) => a.runtime));
    for (const a of next.values()) if (a.socket) a.socket.runtime = a.runtime;
    for (const a of this.active.values())
      if (!keptRuntimes.has(a.runtime)) a.runtime.drain(next.get(a.config.name)?.runtime);
    const keptSockets = new Set([...next.values()].map((a) => a.socket));
    for (const a of this.active.values()) if (a.socket && !keptSockets.has(a.socket)) void a.socket.close();
    this.active = next;
    this.byPort = new Map();
    for (const a of next.values()) {
      if (a.config.bindToPort) continue;
      const list = this.byPort.get(a.config.port) ?? [];
      list.push(a);
      this.byPort.set(a.config.port, list);
    }
    this.logger.info(
      {
        listeners: [...next.values()].map(
          (a) => `${a.config.name}${a.socket ? `@${a.socket.address}:${a.socket.boundPort}` : ''}`,
        ),
      },
      'listeners updated',
    );
  }

  /** Envoy's use_original_dst hand-over: `address:port` exactly, else the `0.0.0.0:port` listener. */
  virtualFor(host: string, port: number): ChainedListenerRuntime | undefined {
    const list = this.byPort.get(port);
    if (!list) return undefined;
    const runtime = (
      list.find((a) => a.config.address === host) ?? list.find((a) => a.config.address === '0.0.0.0')
    )?.runtime;
    return runtime instanceof ChainedListenerRuntime ? runtime : undefined;
  }

  /** Route tables the current listeners need from RDS. */
  rdsNames(): string[] {
    const names = new Set<string>();
    for (const a of this.active.values()) {
      if (a.runtime instanceof ChainedListenerRuntime) for (const n of a.runtime.rdsNames()) names.add(n);
    }
    return [...names].sort();
  }

  /** Secret names the listeners' TLS chains use (to subscribe over SDS). */
  secretNames(): string[] {
    const names = new Set<string>();
    for (const a of this.active.values()) {
      for (const chain of [...a.config.chains, ...(a.config.defaultChain ? [a.config.defaultChain] : [])]) {
        for (const n of chain.tls?.secrets ?? []) names.add(n);
      }
    }
    return [...names].sort();
  }

  list(): {
    name: string;
    address: string;
    port: number;
    pipe: boolean;
    bound: boolean;
    config: ListenerConfig;
  }[] {
    return [...this.active.values()].map((a) => ({
      name: a.config.name,
      address: a.config.address,
      pipe: a.config.pipe !== undefined,
      port: a.socket?.boundPort ?? a.config.port,
      bound: a.socket !== undefined,
      config: a.config,
    }));
  }

  async close(): Promise<void> {
    const all = [...this.active.values()];
    this.active = new Map();
    this.byPort = new Map();
    for (const a of all) a.runtime.drain();
    // Stop accepting at once; connections still open get a short grace, not the full drain period.
    const closed = Promise.all(all.map((a) => a.socket?.close()));
    await Promise.race([closed, new Promise((r) => setTimeout(r, CLOSE_GRACE_MS).unref())]);
  }

  private createRuntime(config: ListenerConfig): ListenerRuntime {
    // Connections redirected by iptables: the kernel knows where each was going.
    if (this.captureMode === 'iptables' && capturesOriginalDst(config))
      return new TransparentCaptureRuntime(config, this.deps, this);
    if (config.useOriginalDst && config.bindToPort) {
      switch (this.captureMode) {
        case 'http-proxy':
          try {
            return new HttpProxyCaptureRuntime(config, this.deps, this);
          } catch (err) {
            throw new ConfigError(`listener ${config.name}: ${(err as Error).message}`);
          }
      }
    }
    return new ChainedListenerRuntime(config, this.deps);
  }
}
