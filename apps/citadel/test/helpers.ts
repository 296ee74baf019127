import { once } from 'node:events';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import tls from 'node:tls';
import {
  type CertifiedKey,
  createCsr,
  createIntermediateCa,
  createRootCa,
  exportPrivateKeyPem,
  generateKeyPair,
  type KeyType,
  type MintWorkloadTokenOptions,
  mintWorkloadToken,
} from '@mizzen/pki';
import { createLogger } from '@mizzen/runtime';
import { CaClient } from '@mizzen/xds';
import type { Authenticator } from '../src/authn.js';
import { LocalTokenAuthenticator, loadTokenKey } from '../src/authn-local.js';
import { Citadel, type CitadelOptions, type CitadelPorts } from '../src/citadel.js';

const cleanups: (() => Promise<void> | void)[] = [];

/** Runs every registered cleanup, newest first; call from afterEach. */
export async function cleanup(): Promise<void> {
  while (cleanups.length) await cleanups.pop()!();
}

export function onCleanup(fn: () => Promise<void> | void): void {
  cleanups.push(fn);
}

export function tempDir(prefix = 'citadel-test-'): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  onCleanup(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Log lines (parsed JSON) captured from a logger. */
export class LogCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  readonly raw: string[] = [];

  override _write(chunk: Buffer, _enc: BufferEncoding, done: () => void): void {
    for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) {
      this.raw.push(line);
      this.lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    done();
  }

  find(msg: string): Record<string, unknown> | undefined {
    return this.lines.find((l) => l.msg === msg);
  }

  all(msg: string): Record<string, unknown>[] {
    return this.lines.filter((l) => l.msg === msg);
  }

  text(): string {
    return this.raw.join('\n');
  }
}

export interface Harness {
  citadel: Citadel;
  ports: CitadelPorts;
  caDir: string;
  logs: LogCapture;
  /** The local token secret (when the local authenticator is used). */
  secret: string;
  /** The roots the client verifies citadel's gRPC certificate with (empty when it serves plaintext). */
  roots: string;
  /** A real gRPC client over TLS (plaintext with `plaintext: true`). */
  client: CaClient;
  token(
    namespace: string,
    serviceAccount: string,
    extra?: Partial<MintWorkloadTokenOptions>,
  ): Promise<string>;
  http(pathname: string, headers?: Record<string, string>): Promise<Response>;
  stop(): Promise<void>;
}

export interface HarnessOptions extends Partial<Omit<CitadelOptions, 'logger' | 'authenticator'>> {
  authenticator?: Authenticator;
  /** Serve gRPC without TLS (`--grpc-plaintext`); TLS for localhost and 127.0.0.1 otherwise. */
  plaintext?: boolean;
}

/** A real citadel on free ports over a temp CA dir, with a real gRPC client (TLS). Stopped by `cleanup()`. */
export async function startCitadel({ plaintext, ...options }: HarnessOptions = {}): Promise<Harness> {
  const caDir = options.caDir ?? tempDir();
  const logs = new LogCapture();
  const logger = createLogger('citadel', { destination: logs, level: 'debug' });
  const secret = await loadTokenKey(path.join(caDir, 'workload-token.key'), logger);
  const citadel = new Citadel({
    logger,
    host: '127.0.0.1',
    grpcPort: 0,
    httpPort: 0,
    trustDomain: 'cluster.local',
    defaultTtlSeconds: 24 * 3600,
    maxTtlSeconds: 90 * 86_400,
    selfSignedRootTtlSeconds: 10 * 365 * 86_400,
    caKeyType: 'EC-P256',
    reloadDebounceMs: 50,
    ...(plaintext ? {} : { grpcTls: { names: ['localhost', '127.0.0.1'] } }),
    ...options,
    caDir,
    authenticator: options.authenticator ?? new LocalTokenAuthenticator(secret),
  });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    client.close();
    await citadel.stop();
  };
  const ports = await citadel.start();
  const roots = plaintext ? '' : citadel.store.current().roots.join('');
  const client = new CaClient({
    address: `127.0.0.1:${ports.grpc}`,
    deadlineMs: 10_000,
    ...(plaintext ? {} : { rootCertificates: roots }),
  });
  onCleanup(stop);
  return {
    citadel,
    ports,
    caDir,
    logs,
    secret,
    roots,
    client,
    token: (namespace, serviceAccount, extra = {}) =>
      mintWorkloadToken(secret, { namespace, serviceAccount, ttlSeconds: 600, ...extra }),
    http: (pathname, headers = {}) => fetch(`http://127.0.0.1:${ports.http}${pathname}`, { headers }),
    stop,
  };
}

export interface Workload {
  keyPem: string;
  chain: string[];
}

/** A workload's side: its own key, a CSR, CreateCertificate with its token. */
export async function enroll(
  h: Pick<Harness, 'client'>,
  token: string,
  options: { keyType?: KeyType; uris?: string[]; ttlSeconds?: number; impersonate?: string } = {},
): Promise<Workload> {
  const keys = await generateKeyPair(options.keyType ?? 'EC-P256');
  const csrPem = await createCsr({ keys, uris: options.uris ?? [] });
  const chain = await h.client.createCertificate({
    csrPem,
    token,
    ...(options.ttlSeconds !== undefined ? { ttlSeconds: options.ttlSeconds } : {}),
    ...(options.impersonate ? { metadata: { ImpersonatedIdentity: options.impersonate } } : {}),
    clusterId: 'Kubernetes',
  });
  return { keyPem: await exportPrivateKeyPem(keys.privateKey), chain };
}

export interface HandshakeResult {
  clientAuthorized: boolean;
  serverSawClient: string | undefined;
  clientSawServer: string | undefined;
}

/**
 * Real mutual TLS with node:tls: a server presenting `server`'s chain and
 * demanding a client certificate, a client presenting `client`'s, both
 * trusting only `rootPem`.
 */
export async function mutualTls(
  server: Workload,
  client: Workload,
  rootPem: string,
): Promise<HandshakeResult> {
  let serverSawClient: string | undefined;
  const srv = tls.createServer(
    {
      key: server.keyPem,
      cert: server.chain.slice(0, -1).join(''),
      ca: rootPem,
      requestCert: true,
      rejectUnauthorized: true,
    },
    (socket) => {
      serverSawClient = socket.getPeerCertificate().subjectaltname;
      socket.end('hello');
    },
  );
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  try {
    const socket = tls.connect({
      host: '127.0.0.1',
      port: (srv.address() as { port: number }).port,
      key: client.keyPem,
      cert: client.chain.slice(0, -1).join(''),
      ca: rootPem,
      // SPIFFE certificates carry no DNS names; the peer's identity is checked from its URI SAN instead.
      checkServerIdentity: () => undefined,
    });
    await once(socket, 'secureConnect');
    const clientSawServer = socket.getPeerCertificate().subjectaltname;
    const [data] = await once(socket, 'data');
    if (String(data) !== 'hello') throw new Error(`unexpected data ${String(data)}`);
    const clientAuthorized = socket.authorized;
    socket.destroy();
    return { clientAuthorized, serverSawClient, clientSawServer };
  } finally {
    await new Promise((resolve) => srv.close(resolve));
  }
}

/** A metric's value from Prometheus text (0 when absent). */
export function metricValue(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** An operator's CA for Istio's plug-in layout: a root and the intermediate citadel signs with. */
export interface PlugIn {
  root: CertifiedKey;
  int: CertifiedKey;
}

export async function plugInSet(name: string): Promise<PlugIn> {
  const root = await createRootCa({ subject: `O=cluster.local, CN=${name} Root` });
  const int = await createIntermediateCa({
    issuer: root,
    subject: `O=cluster.local, CN=${name} Intermediate`,
    ttlSeconds: 86_400,
  });
  return { root, int };
}

/** Writes Istio's four plug-in files the way cert-manager's secret mount changes them: each file replaced whole. */
export function writePlugIn(dir: string, set: PlugIn, only?: string[]): void {
  const files: Record<string, string> = {
    'ca-cert.pem': set.int.certificate,
    'ca-key.pem': set.int.privateKeyPem,
    'cert-chain.pem': set.int.certificate + set.root.certificate,
    'root-cert.pem': set.root.certificate,
  };
  for (const [name, content] of Object.entries(files)) {
    if (only && !only.includes(name)) continue;
    const tmp = path.join(dir, `.${name}.tmp`);
    fs.writeFileSync(tmp, content, { mode: name === 'ca-key.pem' ? 0o600 : 0o644 });
    fs.renameSync(tmp, path.join(dir, name));
  }
}
