import fs from 'node:fs';
import { createLogger, installLifecycle, onShutdown, startComponentTracing } from '@mizzen/runtime';
import type { Authenticator } from './authn.js';
import { KubernetesTokenReviewAuthenticator } from './authn-kubernetes.js';
import { LocalTokenAuthenticator, loadTokenKey } from './authn-local.js';
import { Citadel } from './citadel.js';
import { type CitadelConfig, FlagError, parseCitadelFlags, USAGE } from './flags.js';

const IN_CLUSTER_CA = '/var/run/secrets/kubernetes.io/serviceaccount/ca.crt';

function fail(message: string, code: number, usage = false): never {
  process.stderr.write(`citadel: ${message}\n${usage ? `${USAGE}\n` : ''}`);
  process.exit(code);
}

async function authenticatorFor(
  config: CitadelConfig,
  logger: ReturnType<typeof createLogger>,
): Promise<Authenticator> {
  if (config.auth.mode === 'local')
    return new LocalTokenAuthenticator(await loadTokenKey(config.auth.tokenKeyFile, logger));
  const caFile = config.auth.caFile ?? (fs.existsSync(IN_CLUSTER_CA) ? IN_CLUSTER_CA : undefined);
  let ca: string | undefined;
  if (caFile) {
    try {
      ca = fs.readFileSync(caFile, 'utf8');
    } catch (err) {
      throw new Error(
        `cannot read --kube-ca-file ${caFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      );
    }
  }
  if (!fs.existsSync(config.auth.tokenFile))
    throw new Error(`--kube-token-file ${config.auth.tokenFile} does not exist`);
  const k8s = new KubernetesTokenReviewAuthenticator({
    apiUrl: config.auth.apiUrl,
    tokenFile: config.auth.tokenFile,
    ...(ca ? { ca } : {}),
  });
  onShutdown(() => k8s.close());
  return k8s;
}

async function main(): Promise<void> {
  let config: CitadelConfig | 'help';
  try {
    config = parseCitadelFlags(process.argv.slice(2));
  } catch (err) {
    if (err instanceof FlagError) fail(err.message, 2, true);
    throw err;
  }
  if (config === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const logger = createLogger('citadel', config.logLevel ? { level: config.logLevel } : {});
  installLifecycle(logger);
  startComponentTracing('citadel', logger);
  let citadel: Citadel;
  try {
    citadel = new Citadel({
      logger,
      host: config.host,
      grpcPort: config.grpcPort,
      httpPort: config.httpPort,
      caDir: config.caDir,
      trustDomain: config.trustDomain,
      authenticator: await authenticatorFor(config, logger),
      defaultTtlSeconds: config.defaultTtlSeconds,
      maxTtlSeconds: config.maxTtlSeconds,
      selfSignedRootTtlSeconds: config.selfSignedRootTtlSeconds,
      caKeyType: config.caKeyType,
      ...(config.grpcTls ? { grpcTls: config.grpcTls } : {}),
    });
    onShutdown(() => citadel.stop());
    await citadel.start();
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const message = e.code === 'EADDRINUSE' ? `port already in use (${e.message})` : e.message;
    logger.fatal({ err: message }, 'citadel failed to start');
    logger.flush?.();
    fail(message, 1);
  }
}

void main();
