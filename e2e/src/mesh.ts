import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  type CaFiles,
  CredentialDirectory,
  createCsr,
  exportPrivateKeyPem,
  formatSpiffeId,
  generateKeyPair,
  generateTokenSecret,
  mintWorkloadToken,
  type TlsCredential,
} from '@mizzen/pki';
import { PortAllocator } from '@mizzen/runtime';
import { CaClient } from '@mizzen/xds';
import { getJson, postJson } from './http.js';
import { eventually } from './load.js';
import { appEntry, type Proc, Processes } from './processes.js';

export interface SyncEntry {
  proxy: string;
  sync?: Record<string, string>;
  errors?: Record<string, string>;
  types?: { type: string; state: string; error?: string; ackedVersion?: string }[];
}

export interface PilotHandle {
  xds: string;
  base: string;
  proc: Proc;
  /** Stops pilot (SIGKILL when `hard`) and starts it again on the same ports and store. */
  restart: (opts?: { hard?: boolean; downMs?: number }) => Promise<void>;
  kill: (signal?: NodeJS.Signals) => Promise<void>;
}

export interface SidecarHandle {
  id: string;
  workload: string;
  outboundPort: number;
  inboundPort: number;
  adminPort: number;
  healthPort: number;
  /** Where the proxy serves `/stats/prometheus`. */
  statsPort: number;
  proc: Proc;
}

export interface CollectorHandle {
  /** The query API's base URL (`/api/graph`, `/api/traces/:id`…). */
  api: string;
  otlpHttpPort: number;
  otlpGrpcPort: number;
  proc: Proc;
}

export interface CitadelHandle {
  /** gRPC CA address (`CreateCertificate`). */
  address: string;
  /** HTTP: /ready, /metrics, /root-cert.pem. */
  base: string;
  proc: Proc;
}

/** A small mesh of real processes (pilot, sidecars, gateways) in a temp directory, torn down by `stop()`. */
export class TestMesh {
  readonly procs = new Processes();
  /** Every port a process of this mesh gets, distinct from all the others. */
  readonly ports = new PortAllocator();
  readonly dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-mesh-'));
  readonly configDir = path.join(this.dir, 'config');
  /** The local credential store pilot serves gateways' credentialName from (what `mizzen create secret tls` fills). */
  readonly credentialsDir = path.join(this.dir, 'credentials');
  pilot?: PilotHandle;
  citadel?: CitadelHandle;
  private tokenSecret?: string;

  constructor() {
    fs.mkdirSync(this.configDir, { recursive: true });
  }

  /** Stores (or replaces: rotation) a TLS credential, as `mizzen create secret tls NAME -n NAMESPACE` does. */
  writeCredential(name: string, credential: TlsCredential, namespace = 'istio-system'): void {
    new CredentialDirectory(this.credentialsDir).write(namespace, name, credential);
  }

  /** citadel's `--ca-dir`: its root, the plug-in CA files, the token key. */
  get caDir(): string {
    return path.join(this.dir, 'ca');
  }

  /**
   * Writes Istio's plug-in CA files into citadel's directory, each replaced
   * whole as a secret volume changes them: before `startCitadel` it starts
   * from this CA, afterwards citadel reloads it (a rotation).
   */
  writePlugInCa(files: CaFiles): void {
    fs.mkdirSync(this.caDir, { recursive: true, mode: 0o700 });
    const named: [string, string | undefined, number][] = [
      ['ca-cert.pem', files.caCert, 0o644],
      ['ca-key.pem', files.caKey, 0o600],
      ['cert-chain.pem', files.certChain, 0o644],
      ['root-cert.pem', files.rootCert, 0o644],
    ];
    for (const [name, content, mode] of named) {
      if (content === undefined) continue;
      const file = path.join(this.caDir, name);
      fs.writeFileSync(`${file}.tmp`, content, { mode });
      fs.renameSync(`${file}.tmp`, file);
    }
  }

  /** Writes a YAML file into the directory pilot watches. */
  writeConfig(name: string, yaml: string): void {
    fs.writeFileSync(path.join(this.configDir, name), yaml);
  }

  /**
   * Starts citadel (the CA) with a fresh root; proxies started afterwards get
   * a token for their service account and fetch workload certificates, and
   * pilot (start it after citadel) hands out the root: the mesh speaks mTLS.
   */
  async startCitadel(extraArgs: string[] = []): Promise<CitadelHandle> {
    const [grpcPort, httpPort] = await this.ports.takeMany(2);
    const keyFile = path.join(this.caDir, 'token-key');
    this.tokenSecret = generateTokenSecret();
    fs.mkdirSync(path.dirname(keyFile), { recursive: true, mode: 0o700 });
    fs.writeFileSync(keyFile, this.tokenSecret, { mode: 0o600 });
    const base = `http://127.0.0.1:${httpPort}`;
    const proc = this.procs.start('citadel', appEntry('@mizzen/citadel'), [
      '--host',
      '127.0.0.1',
      '--grpc-port',
      String(grpcPort),
      '--http-port',
      String(httpPort),
      '--ca-dir',
      this.caDir,
      '--token-key',
      keyFile,
      ...extraArgs,
    ]);
    await eventually('citadel /ready', async () => (await fetch(`${base}/ready`)).ok, 30_000);
    this.citadel = { address: `127.0.0.1:${grpcPort}`, base, proc };
    return this.citadel;
  }

  /** The flags that give a proxy its workload certificate, when citadel runs (a token file per proxy). */
  private async certificateArgs(name: string, namespace: string, serviceAccount: string): Promise<string[]> {
    if (!this.citadel || !this.tokenSecret) return [];
    const token = await mintWorkloadToken(this.tokenSecret, { namespace, serviceAccount, ttlSeconds: 3600 });
    const file = path.join(this.caDir, `${name}.jwt`);
    fs.writeFileSync(file, token, { mode: 0o600 });
    // citadel's gRPC is TLS, its certificate issued by the root it keeps next to the plug-in files.
    return [
      '--ca-address',
      this.citadel.address,
      '--ca-token-file',
      file,
      '--ca-root-cert',
      path.join(this.caDir, 'root-cert.pem'),
    ];
  }

  /**
   * A workload certificate from citadel for `spiffe://cluster.local/ns/NS/sa/SA`,
   * as a sidecar gets one (a key made here, a CSR with the service account's
   * token): for clients that speak the mesh's mutual TLS themselves.
   */
  async workloadCertificate(
    namespace: string,
    serviceAccount: string,
  ): Promise<{ certificate: string; privateKeyPem: string; root: string }> {
    if (!this.citadel || !this.tokenSecret) throw new Error('start citadel first');
    const keys = await generateKeyPair();
    const identity = formatSpiffeId({ trustDomain: 'cluster.local', namespace, serviceAccount });
    const token = await mintWorkloadToken(this.tokenSecret, { namespace, serviceAccount, ttlSeconds: 600 });
    // citadel's gRPC is TLS, verified with the root it keeps next to the plug-in files (as sidecars do).
    const rootCertificates = fs.readFileSync(path.join(this.caDir, 'root-cert.pem'), 'utf8');
    const ca = new CaClient({ address: this.citadel.address, rootCertificates });
    try {
      const chain = await ca.createCertificate({
        csrPem: await createCsr({ keys, uris: [identity] }),
        token,
        ttlSeconds: 3600,
      });
      return {
        certificate: chain.slice(0, -1).join('') || chain[0]!,
        privateKeyPem: await exportPrivateKeyPem(keys.privateKey),
        root: chain.at(-1)!,
      };
    } finally {
      ca.close();
    }
  }

  /** Starts pilot; `xdsPort` fixes where it serves ADS (a proxy started before it already dials there). */
  async startPilot(extraArgs: string[] = [], opts: { xdsPort?: number } = {}): Promise<PilotHandle> {
    const [xdsPort, httpPort] = opts.xdsPort
      ? [opts.xdsPort, await this.ports.take()]
      : await this.ports.takeMany(2);
    const args = [
      '--host',
      '127.0.0.1',
      '--xds-port',
      String(xdsPort),
      '--http-port',
      String(httpPort),
      '--config-dir',
      this.configDir,
      '--store',
      path.join(this.dir, 'store.json'),
      '--registrations',
      path.join(this.dir, 'registrations.json'),
      '--credentials-dir',
      this.credentialsDir,
      ...(this.citadel ? ['--citadel-url', this.citadel.base] : []),
      ...extraArgs,
    ];
    const base = `http://127.0.0.1:${httpPort}`;
    const launch = () => this.procs.start('pilot', appEntry('@mizzen/pilot'), args);
    const waitReady = () => eventually('pilot /ready', async () => (await fetch(`${base}/ready`)).ok, 30_000);
    const handle: PilotHandle = {
      xds: `127.0.0.1:${xdsPort}`,
      base,
      proc: launch(),
      kill: async (signal = 'SIGTERM') => {
        await handle.proc.kill(signal);
      },
      restart: async (opts = {}) => {
        await handle.proc.kill(opts.hard ? 'SIGKILL' : 'SIGTERM');
        if (opts.downMs) await new Promise((r) => setTimeout(r, opts.downMs));
        handle.proc = launch();
        await waitReady();
      },
    };
    await waitReady();
    this.pilot = handle;
    return handle;
  }

  async startSidecar(opts: {
    workload: string;
    service: string;
    labels: Record<string, string>;
    appPort: number;
    servicePort?: number;
    portName?: string;
    namespace?: string;
    /** The service account it runs as (its certificate's identity); the service's name unless given. */
    serviceAccount?: string;
    /** More flags (`--otlp-endpoint`, `--app-metrics`…). */
    extraArgs?: string[];
    /** More environment for the process (what a pod's env gives its istio-proxy container: `REDIS_URL`, OTEL_*…). */
    env?: Record<string, string>;
  }): Promise<SidecarHandle> {
    if (!this.pilot) throw new Error('start pilot first');
    const [inboundPort, outboundPort, adminPort, healthPort, statsPort] = await this.ports.takeMany(5);
    const namespace = opts.namespace ?? 'default';
    const labels = Object.entries(opts.labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const proc = this.procs.start(
      `sidecar ${opts.workload}`,
      appEntry('@mizzen/sidecar-agent'),
      [
        '--pilot',
        this.pilot.xds,
        '--workload',
        opts.workload,
        '--namespace',
        namespace,
        '--service',
        opts.service,
        '--service-account',
        opts.serviceAccount ?? opts.service,
        '--labels',
        labels,
        '--port',
        `${opts.portName ?? 'http'}:${opts.servicePort ?? 9080}:${opts.appPort}:${inboundPort}`,
        '--ip',
        '127.0.0.1',
        '--outbound-port',
        String(outboundPort),
        '--admin-port',
        String(adminPort),
        '--health-port',
        String(healthPort),
        '--stats-port',
        String(statsPort),
        ...(await this.certificateArgs(opts.workload, namespace, opts.serviceAccount ?? opts.service)),
        ...(opts.extraArgs ?? []),
      ],
      opts.env,
    );
    return {
      id: `sidecar~127.0.0.1~${opts.workload}.${namespace}~${namespace}.svc.cluster.local`,
      workload: opts.workload,
      outboundPort,
      inboundPort,
      adminPort,
      healthPort,
      statsPort,
      proc,
    };
  }

  async startGateway(opts: {
    name?: string;
    portMap: Record<number, number>;
    /** The egress gateway app (Istio's egress defaults: istio-egressgateway, istio=egressgateway). */
    egress?: boolean;
    /** More flags (`--proxy-config`…). */
    extraArgs?: string[];
    /** More environment for the process (`REDIS_URL` for shared rate limit counters). */
    env?: Record<string, string>;
    /** Where the gateway dials pilot (host:port), when pilot is not started yet or is another. */
    pilot?: string;
  }): Promise<SidecarHandle> {
    const pilot = opts.pilot ?? this.pilot?.xds;
    if (!pilot) throw new Error('start pilot first');
    const name = opts.name ?? (opts.egress ? 'istio-egressgateway' : 'istio-ingressgateway');
    const [adminPort, healthPort, statsPort] = await this.ports.takeMany(3);
    const portMap = Object.entries(opts.portMap)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const proc = this.procs.start(
      `gateway ${name}`,
      appEntry(opts.egress ? '@mizzen/egress-gateway' : '@mizzen/ingress-gateway'),
      [
        '--pilot',
        pilot,
        '--name',
        name,
        '--namespace',
        'istio-system',
        '--ip',
        '127.0.0.1',
        '--port-map',
        portMap,
        '--admin-port',
        String(adminPort),
        '--health-port',
        String(healthPort),
        '--stats-port',
        String(statsPort),
        ...(await this.certificateArgs(name, 'istio-system', `${name}-service-account`)),
        ...(opts.extraArgs ?? []),
      ],
      opts.env,
    );
    return {
      id: `router~127.0.0.1~${name}.istio-system~istio-system.svc.cluster.local`,
      workload: name,
      outboundPort: 0,
      inboundPort: 0,
      adminPort,
      healthPort,
      statsPort,
      proc,
    };
  }

  /**
   * Starts the telemetry collector with pilot as its source of scrape
   * targets (start pilot first): OTLP/HTTP and gRPC receivers, the query
   * API. `ports` (API, OTLP/HTTP, OTLP/gRPC) when the mesh config named
   * them before pilot started; free ones otherwise.
   */
  async startCollector(
    opts: { ports?: [number, number, number]; extraArgs?: string[] } = {},
  ): Promise<CollectorHandle> {
    if (!this.pilot) throw new Error('start pilot first');
    const [apiPort, otlpHttpPort, otlpGrpcPort] = opts.ports ?? (await this.ports.takeMany(3));
    const api = `http://127.0.0.1:${apiPort}`;
    const proc = this.procs.start('telemetry-collector', appEntry('@mizzen/telemetry-collector'), [
      '--host',
      '127.0.0.1',
      '--http-port',
      String(apiPort),
      '--otlp-http-port',
      String(otlpHttpPort),
      '--otlp-grpc-port',
      String(otlpGrpcPort),
      '--pilot',
      this.pilot.base,
      '--scrape-interval',
      '1s',
      ...(opts.extraArgs ?? []),
    ]);
    await eventually('the collector up', async () => (await fetch(`${api}/healthz`)).ok);
    return { api, otlpHttpPort, otlpGrpcPort, proc };
  }

  async syncz(): Promise<SyncEntry[]> {
    return getJson<SyncEntry[]>(`${this.pilot!.base}/debug/syncz`);
  }

  /**
   * Waits until every listed proxy is connected and ACKed all four types at pilot's current config.
   * The bound is generous: a loaded 2-core machine takes a while to start a dozen Node processes.
   */
  async waitForSync(ids: string[], timeoutMs = 90_000): Promise<void> {
    await eventually(
      `proxies ${ids.join(', ')} to ACK their config`,
      async () => {
        const entries = new Map((await this.syncz()).map((e) => [e.proxy, e]));
        for (const id of ids) {
          const e = entries.get(id);
          if (!e) return [`${id} not connected`, ...this.procs.exited()].join('; ');
          for (const t of ['CDS', 'EDS', 'LDS', 'RDS'])
            if (e.sync?.[t] !== 'ACKED')
              return `${id} ${t}=${e.sync?.[t]}${e.errors?.[t] ? ` (${e.errors[t]})` : ''}`;
        }
        return true;
      },
      timeoutMs,
    );
  }

  /** `mizzen apply` through pilot's config API. */
  async apply(yaml: string, source = 'test.yaml'): Promise<{ status: number; body: { errors?: string[] } }> {
    return postJson(`${this.pilot!.base}/apis/config/apply`, { yaml, source });
  }

  /** `mizzen delete` through pilot's config API. */
  async remove(yaml: string, source = 'test.yaml'): Promise<{ status: number; body: { errors?: string[] } }> {
    return postJson(`${this.pilot!.base}/apis/config/delete`, { yaml, source });
  }

  async stop(): Promise<void> {
    await this.procs.stopAll();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
