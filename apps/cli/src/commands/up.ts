import fs from 'node:fs';
import path from 'node:path';
import { isPortInUse, PortAllocator } from '@mizzen/runtime';
import { CliError } from '../errors.js';
import { BOOKINFO_SERVICE_PORT, BOOKINFO_WORKLOADS } from '../local/bookinfo.js';
import {
  BOOKINFO_HOST,
  bookinfoCertificate,
  EGRESS_GATEWAY,
  gatewayId,
  gatewaySpec,
  INGRESS_GATEWAY,
} from '../local/gateways.js';
import { LocalIdentities } from '../local/identity.js';
import { appEntry, defaultConfigDir, mizzenHome } from '../local/paths.js';
import {
  citadelReady,
  pilotReady,
  productpageServes,
  productpageServesOverTls,
  proxiesSynced,
  waitUntil,
} from '../local/readiness.js';
import { type MeshState, removeState, writeState } from '../local/state.js';
import { type ChildSpec, Supervisor } from '../local/supervisor.js';
import { collectorReady, writeMeshConfig } from '../local/telemetry.js';
import { formatTable } from '../output/table.js';
import { credentialsDir } from './secret.js';

export interface UpOptions {
  configDir?: string;
  redis?: string;
  ingressPort?: number;
  pilotXdsPort?: number;
  pilotHttpPort?: number;
  /** Forget config applied with `mizzen apply` in earlier runs. */
  reset?: boolean;
  timeoutMs?: number;
}

const HOST = '127.0.0.1';
const NAMESPACE = 'default';

/** A well-known port if it is free, otherwise any free port (local mode may move ports and says where). */
async function preferredPort(ports: PortAllocator, preferred: number): Promise<number> {
  if (await isPortInUse(preferred, HOST)) return ports.take();
  ports.reserve(preferred);
  return preferred;
}

function sidecarId(workload: string): string {
  return `sidecar~${HOST}~${workload}.${NAMESPACE}~${NAMESPACE}.svc.cluster.local`;
}

function tail(file: string, lines = 15): string {
  try {
    return fs.readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * The flags that make a proxy fetch its workload certificate from citadel,
 * over TLS checked against the root citadel keeps in its directory.
 */
function caFlags(caAddress: string, tokenFile: string, caRootCert: string): string[] {
  return ['--ca-address', caAddress, '--ca-token-file', tokenFile, '--ca-root-cert', caRootCert];
}

/**
 * `mizzen up`: citadel, pilot, the ingress and egress gateways and Bookinfo
 * with a sidecar per workload, as local processes; every proxy gets a workload
 * certificate, so traffic between sidecars is mutual TLS (Istio's auto mTLS,
 * PERMISSIVE), and the ingress serves bookinfo.local over HTTPS with a
 * certificate made here. Prints progress, then a table of what runs where,
 * then `mesh ready` — only once every proxy ACKed its config and productpage
 * answers through the ingress over HTTP and HTTPS. Ctrl-C stops everything.
 */
export async function up(options: UpOptions, out: NodeJS.WritableStream): Promise<void> {
  const configDir = path.resolve(options.configDir ?? defaultConfigDir());
  if (!fs.existsSync(configDir) || !fs.statSync(configDir).isDirectory()) {
    throw new CliError(`config directory ${configDir} does not exist`);
  }
  if (options.redis !== undefined && !/^rediss?:\/\/[^\s]+$/.test(options.redis)) {
    throw new CliError(`--redis must be a redis:// or rediss:// URL, got "${options.redis}"`, 2);
  }
  const home = mizzenHome();
  const runDir = path.join(home, 'run');
  fs.rmSync(path.join(runDir, 'registrations.json'), { force: true });
  fs.mkdirSync(runDir, { recursive: true });
  const storeFile = path.join(home, 'pilot', 'store.json');
  if (options.reset) fs.rmSync(storeFile, { force: true });

  const ingressPort = options.ingressPort ?? 8080;
  if (ingressPort !== 0 && (await isPortInUse(ingressPort, HOST))) {
    throw new CliError(
      `port ${ingressPort} is in use, so the ingress gateway cannot listen there; stop what uses it or pass --ingress-port PORT`,
    );
  }
  // Every port comes from one allocator, so no two children are ever given the same port.
  const ports = new PortAllocator(HOST);
  if (ingressPort !== 0) ports.reserve(ingressPort);
  const ingress = ingressPort === 0 ? await ports.take() : ingressPort;
  const xdsPort = options.pilotXdsPort ?? (await preferredPort(ports, 15010));
  const httpPort = options.pilotHttpPort ?? (await preferredPort(ports, 15014));
  const pilotBase = `http://${HOST}:${httpPort}`;
  const caGrpcPort = await preferredPort(ports, 8060);
  const caHttpPort = await preferredPort(ports, 15016);
  const citadelBase = `http://${HOST}:${caHttpPort}`;
  const caAddress = `${HOST}:${caGrpcPort}`;
  const caDir = path.join(home, 'ca');
  // citadel serves its gRPC CA over TLS with a certificate from its own CA; proxies check it with this root.
  const caRootCert = path.join(caDir, 'root-cert.pem');
  // The CA's root and the token key persist across runs, like a cluster's; tokens are per run, short-lived and renewed.
  const identities = LocalIdentities.open(path.join(caDir, 'token-key'), path.join(runDir, 'tokens'));
  const ingressUrl = `http://${HOST}:${ingress}`;
  // HTTPS at the ingress (Gateway port 443) on DESIGN's 8443 when free, for bookinfo.local.
  const ingressHttps = await preferredPort(ports, 8443);
  const ingressHttpsUrl = `https://${BOOKINFO_HOST}:${ingressHttps}`;
  // The egress gateway's Service ports 80 and 443, wherever they are free.
  const [egressHttp, egressHttps] = await ports.takeMany(2);
  // The telemetry collector: OTLP receivers every proxy exports to, and the dashboard.
  const dashboardPort = await preferredPort(ports, 20001);
  const otlpHttpPort = await preferredPort(ports, 4318);
  const otlpGrpcPort = await preferredPort(ports, 4317);
  const dashboardUrl = `http://${HOST}:${dashboardPort}`;
  const meshConfigFile = writeMeshConfig(path.join(runDir, 'mesh-config.yaml'), HOST, otlpHttpPort);

  let failure: string | undefined;
  let ready = false;
  let caFile = '';
  const supervisor = new Supervisor(path.join(home, 'logs'), (name, code, log) => {
    const message = `${name} exited unexpectedly (code ${code}); last lines of ${log}:\n${tail(log)}`;
    if (!ready) failure ??= message;
    else out.write(`warning: ${message}\n`);
  });
  const extraEnv: Record<string, string> = options.redis ? { REDIS_URL: options.redis } : {};
  // Every component's own traces (OpenTelemetry's Node SDK, from the standard OTEL_* environment) go to the
  // collector too: pilot's pushes, citadel's CSRs, the collector's scrape rounds, each proxy's config updates.
  const ownTraces = { OTEL_EXPORTER_OTLP_ENDPOINT: `http://${HOST}:${otlpHttpPort}` };
  const stop = async (signal: string) => {
    out.write(`\n${signal}: stopping the mesh…\n`);
    identities.stop();
    await supervisor.stopAll();
    removeState(process.pid);
    out.write('stopped\n');
    process.exit(0);
  };
  process.once('SIGINT', () => void stop('SIGINT'));
  process.once('SIGTERM', () => void stop('SIGTERM'));

  const start = (spec: ChildSpec) => {
    supervisor.start({ ...spec, env: { ...extraEnv, ...spec.env } });
  };
  const timeoutMs = options.timeoutMs ?? 120_000;
  const wait = (what: string, check: () => Promise<true | string>) =>
    waitUntil(what, timeoutMs, check, () => failure !== undefined).catch((err: Error) => {
      throw new CliError(failure ?? err.message);
    });

  try {
    out.write(
      `making the ${BOOKINFO_HOST} certificate for the HTTPS ingress (credential in ${credentialsDir()})…\n`,
    );
    const bookinfoTls = await bookinfoCertificate(home, credentialsDir());
    // Every proxy's token is renewed while the mesh runs, so certificates keep rotating however long it does.
    identities.startRenewing((message) => out.write(`warning: ${message}\n`));
    out.write(`starting citadel (CA ${caAddress}, root in ${caDir})…\n`);
    start({
      name: 'citadel',
      kind: 'control-plane',
      entry: appEntry('@mizzen/citadel'),
      args: [
        '--host',
        HOST,
        '--grpc-port',
        String(caGrpcPort),
        '--http-port',
        String(caHttpPort),
        '--ca-dir',
        caDir,
        '--token-key',
        path.join(caDir, 'token-key'),
      ],
      ports: { grpc: caGrpcPort, http: caHttpPort },
      env: ownTraces,
    });
    await wait('citadel', () => citadelReady(citadelBase));

    out.write(`starting pilot (config ${configDir})…\n`);
    start({
      name: 'pilot',
      kind: 'control-plane',
      entry: appEntry('@mizzen/pilot'),
      args: [
        '--host',
        HOST,
        '--xds-port',
        String(xdsPort),
        '--http-port',
        String(httpPort),
        '--config-dir',
        configDir,
        '--mesh-config',
        meshConfigFile,
        '--store',
        storeFile,
        '--registrations',
        path.join(runDir, 'registrations.json'),
        '--credentials-dir',
        credentialsDir(),
        '--citadel-url',
        citadelBase,
      ],
      ports: { xds: xdsPort, http: httpPort },
      env: ownTraces,
    });
    await wait('pilot', () => pilotReady(pilotBase));

    out.write(`starting telemetry collector (dashboard ${dashboardUrl}, OTLP :${otlpHttpPort})…\n`);
    start({
      name: 'telemetry-collector',
      kind: 'control-plane',
      entry: appEntry('@mizzen/telemetry-collector'),
      args: [
        '--host',
        HOST,
        '--http-port',
        String(dashboardPort),
        '--otlp-http-port',
        String(otlpHttpPort),
        '--otlp-grpc-port',
        String(otlpGrpcPort),
        '--pilot',
        pilotBase,
        '--scrape-interval',
        '5s',
        ...(options.redis ? ['--redis', options.redis] : []),
      ],
      ports: { http: dashboardPort, 'otlp-http': otlpHttpPort, 'otlp-grpc': otlpGrpcPort },
      env: ownTraces,
    });
    await wait('the telemetry collector', () => collectorReady(dashboardUrl));

    const expected: string[] = [];
    for (const w of BOOKINFO_WORKLOADS) {
      const [appPort, inbound, outbound, admin, health, stats] = await ports.takeMany(6);
      out.write(`starting ${w.name} (app :${appPort}, sidecar inbound :${inbound} outbound :${outbound})…\n`);
      start({
        name: w.name,
        kind: 'app',
        entry: appEntry(w.pkg),
        args: [],
        env: {
          PORT: String(appPort),
          HOST,
          SERVICE_VERSION: w.version,
          POD_NAME: w.name,
          HTTP_PROXY: `http://${HOST}:${outbound}`,
          http_proxy: `http://${HOST}:${outbound}`,
          NO_PROXY: '',
          no_proxy: '',
          ...w.env,
        },
        ports: { app: appPort },
      });
      start({
        name: `${w.name}-sidecar`,
        kind: 'sidecar',
        entry: appEntry('@mizzen/sidecar-agent'),
        args: [
          '--pilot',
          `${HOST}:${xdsPort}`,
          '--workload',
          w.name,
          '--namespace',
          NAMESPACE,
          '--service',
          w.app,
          '--service-account',
          `bookinfo-${w.app}`,
          '--labels',
          `app=${w.app},version=${w.version}`,
          '--port',
          `http:${BOOKINFO_SERVICE_PORT}:${appPort}:${inbound}`,
          '--ip',
          HOST,
          '--outbound-port',
          String(outbound),
          '--stats-port',
          String(stats),
          '--admin-port',
          String(admin),
          '--health-port',
          String(health),
          ...caFlags(
            caAddress,
            await identities.tokenFile(w.name, NAMESPACE, `bookinfo-${w.app}`),
            caRootCert,
          ),
        ],
        ports: { inbound, outbound, admin, health, stats },
        env: ownTraces,
      });
      expected.push(sidecarId(w.name));
    }

    for (const [g, portMap, servicePorts] of [
      [
        INGRESS_GATEWAY,
        { 80: ingress, 8080: ingress, 443: ingressHttps },
        { http: ingress, https: ingressHttps },
      ],
      [EGRESS_GATEWAY, { 80: egressHttp, 443: egressHttps }, { http: egressHttp, https: egressHttps }],
    ] as const) {
      const [admin, health, stats] = await ports.takeMany(3);
      out.write(`starting ${g.name} (:${servicePorts.http} HTTP, :${servicePorts.https} HTTPS)…\n`);
      start({
        ...gatewaySpec(g, {
          host: HOST,
          pilotXds: `${HOST}:${xdsPort}`,
          portMap,
          admin,
          health,
          stats,
          ports: servicePorts,
          extraArgs: caFlags(
            caAddress,
            await identities.tokenFile(g.name, g.namespace, `${g.name}-service-account`),
            caRootCert,
          ),
        }),
        env: ownTraces,
      });
      expected.push(gatewayId(g, HOST));
    }

    out.write(`waiting for ${expected.length} proxies to receive and accept their config…\n`);
    await wait('every proxy to sync', () => proxiesSynced(pilotBase, expected));
    out.write('waiting for productpage to answer through the ingress gateway…\n');
    await wait('productpage through the ingress', () => productpageServes(ingressUrl));
    await wait(`productpage over HTTPS for ${BOOKINFO_HOST}`, () =>
      productpageServesOverTls(
        HOST,
        ingressHttps,
        BOOKINFO_HOST,
        fs.readFileSync(bookinfoTls.caFile, 'utf8'),
      ),
    );
    caFile = bookinfoTls.caFile;
  } catch (err) {
    identities.stop();
    await supervisor.stopAll();
    throw err;
  }

  ready = true;
  const state: MeshState = {
    pid: process.pid,
    startedAt: new Date().toISOString(),
    pilot: { http: pilotBase, xds: `${HOST}:${xdsPort}` },
    ingress: ingressUrl,
    ingressHttps: ingressHttpsUrl,
    dashboard: dashboardUrl,
    configDir,
    home,
    components: supervisor.components(),
  };
  writeState(state);
  out.write('\n');
  out.write(
    `${formatTable(
      ['COMPONENT', 'KIND', 'PID', 'PORTS'],
      state.components.map((c) => [
        c.name,
        c.kind,
        c.pid,
        Object.entries(c.ports)
          .map(([k, v]) => `${k}=${v}`)
          .join(' '),
      ]),
    )}\n\n`,
  );
  out.write(`ingress:   ${ingressUrl}/productpage\n`);
  out.write(
    `https:     ${ingressHttpsUrl}/productpage (curl --cacert ${caFile} --resolve ${BOOKINFO_HOST}:${ingressHttps}:${HOST} …)\n`,
  );
  out.write(`pilot:     ${pilotBase} (xDS ${HOST}:${xdsPort})\n`);
  out.write(`dashboard: ${dashboardUrl} (OTLP/HTTP :${otlpHttpPort}, OTLP/gRPC :${otlpGrpcPort})\n`);
  out.write(`citadel:   ${caAddress} (root ${citadelBase}/root-cert.pem)\n`);
  out.write(`logs:      ${path.join(home, 'logs')}\n`);
  out.write('mesh ready\n');
  // Stay in the foreground until a signal stops the mesh.
  await new Promise<never>(() => {});
}
