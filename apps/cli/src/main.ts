import { type ParseArgsConfig, parseArgs } from 'node:util';
import { CliError } from './errors.js';

// Each command is imported when it runs: `mizzen version`, `mizzen help` and a mistyped flag answer at
// once instead of first loading the YAML validator, the analyzers and the proxy tables.

const HELP = `mizzen — a service mesh that runs Istio's YAML unchanged

Usage:
  mizzen up [--config DIR] [--redis URL] [--ingress-port PORT] [--reset]
                                  start pilot, the ingress and egress gateways and Bookinfo locally
  mizzen apply -f FILE [-f FILE…] [--dry-run]
                                  validate and apply Istio YAML to the running mesh
  mizzen delete -f FILE           delete the resources a file names
  mizzen analyze [-f FILE|DIR…] [-R] [-n NS | -A] [--use-kube=false] [-o log|json|yaml]
                 [--failure-threshold Info|Warning|Error] [--output-threshold Info|Warning|Error]
                                  Istio's analyzers (istioctl analyze) over the running mesh's config with the
                                  files overlaid (nothing is applied), or over the files alone (--use-kube=false);
                                  exits 79 when messages at or above the failure threshold (Error) are found,
                                  65 when a file cannot be read; -L lists the analyzers' messages
  mizzen create secret tls NAME --cert FILE --key FILE [--cacert FILE [--cacrl FILE]] [-n istio-system]
                                  store a gateway credential (credentialName: NAME); again to rotate it
  mizzen create secret generic NAME --from-file=KEY=FILE [--from-file=KEY=FILE…] [-n istio-system]
                                  the same from files by key: tls.crt, tls.key, ca.crt, ca.crl (or cert, key,
                                  cacert, crl); ca.crt alone is a CA, e.g. for a DestinationRule's SIMPLE TLS
  mizzen delete secret NAME [-n istio-system]
  mizzen get KIND [NAME] [-n NS | -A] [-o yaml|json]
                                  list config (vs, dr, gw, se, we, sidecar, pa, ap, ra, telemetry, rlp)
  mizzen status [--output json]   components, proxies and their xDS sync state
  mizzen proxy-config (pc) <cluster|listener|route|endpoint|secret|all|bootstrap> <proxy> [-o short|json|yaml]
                                  what one proxy runs, from its admin API, as istioctl's tables or Envoy's JSON;
                                  <proxy> is a workload name, name.namespace or the node id (-n NS; --admin URL
                                  skips pilot). Filters: clusters --fqdn --port --subset --direction; listeners
                                  --address --port --type; routes --name; endpoints --address --port --cluster --status
  mizzen proxy-status (ps) [<proxy>]
                                  every proxy's xDS sync state (SYNCED, STALE, NOT SENT, NACKED and why); with a
                                  proxy, what pilot sent it against what it runs
  mizzen dashboard [--url URL] [--no-open]
                                  print the dashboard's URL and open it (xdg-open, when there is one)
  mizzen kube-inject -f FILE [--image IMAGE] [--image-pull-policy POLICY]
                                  add the sidecar to the workloads in Kubernetes YAML (to stdout)
  mizzen version

Global: --pilot URL (or MIZZEN_PILOT) selects pilot's HTTP API; the running local mesh is found automatically.
`;

function int(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535)
    throw new CliError(`${flag} must be a port number, got "${value}"`, 2);
  return n;
}

type Flags = Record<string, string | boolean | (string | boolean)[] | undefined>;
type Parse = (options: NonNullable<ParseArgsConfig['options']>) => { values: Flags; positionals: string[] };

/** `mizzen apply -f FILE…` and `mizzen delete -f FILE…`. */
async function applyOrDeleteFiles(command: 'apply' | 'delete', parse: Parse): Promise<void> {
  const { values } = parse({
    filename: { type: 'string', short: 'f', multiple: true },
    'dry-run': { type: 'boolean' },
  });
  const { applyOrDelete } = await import('./commands/apply.js');
  await applyOrDelete(
    command,
    (values.filename as string[] | undefined) ?? [],
    { pilot: values.pilot as string | undefined, dryRun: values['dry-run'] === true },
    process.stdout,
  );
}

async function run(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  const out = process.stdout;
  const parse = (
    options: NonNullable<ParseArgsConfig['options']>,
  ): { values: Flags; positionals: string[] } => {
    try {
      return parseArgs({
        args: rest,
        options: { ...options, pilot: { type: 'string' } },
        allowPositionals: true,
        strict: true,
      });
    } catch (err) {
      throw new CliError(`${command}: ${(err as Error).message}`, 2);
    }
  };
  switch (command) {
    case 'up': {
      const { values } = parse({
        config: { type: 'string' },
        redis: { type: 'string' },
        'ingress-port': { type: 'string' },
        'xds-port': { type: 'string' },
        'http-port': { type: 'string' },
        reset: { type: 'boolean' },
      });
      // Loaded on demand: `up` and `secret` pull in the key and certificate code every other command does without.
      const { up } = await import('./commands/up.js');
      await up(
        {
          configDir: values.config as string | undefined,
          redis: values.redis as string | undefined,
          ingressPort: int(values['ingress-port'] as string | undefined, '--ingress-port'),
          pilotXdsPort: int(values['xds-port'] as string | undefined, '--xds-port'),
          pilotHttpPort: int(values['http-port'] as string | undefined, '--http-port'),
          reset: values.reset === true,
        },
        out,
      );
      return;
    }
    case 'create': {
      const { values, positionals } = parse({
        cert: { type: 'string' },
        key: { type: 'string' },
        cacert: { type: 'string' },
        cacrl: { type: 'string' },
        'from-file': { type: 'string', multiple: true },
        namespace: { type: 'string', short: 'n' },
      });
      const kind = positionals[0] === 'secret' ? positionals[1] : undefined;
      const namespace = values.namespace as string | undefined;
      const fromFiles = (values['from-file'] as string[] | undefined) ?? [];
      if (kind === 'generic') {
        const tlsFlag = (['cert', 'key', 'cacert', 'cacrl'] as const).find((f) => values[f] !== undefined);
        if (tlsFlag)
          throw new CliError(
            `create secret generic: --${tlsFlag} is for \`create secret tls\`; give the file as --from-file=KEY=FILE`,
            2,
          );
        const { createGenericSecret } = await import('./commands/secret.js');
        createGenericSecret({ name: positionals[2], fromFiles, namespace }, out);
        return;
      }
      if (kind !== 'tls')
        throw new CliError(
          'create: only `mizzen create secret tls NAME --cert FILE --key FILE` and `mizzen create secret generic NAME --from-file=KEY=FILE` are supported',
          2,
        );
      if (fromFiles.length)
        throw new CliError(
          'create secret tls: --from-file is for `create secret generic`; give --cert, --key, --cacert, --cacrl',
          2,
        );
      const { createTlsSecret } = await import('./commands/secret.js');
      createTlsSecret(
        {
          name: positionals[2],
          cert: values.cert as string | undefined,
          key: values.key as string | undefined,
          cacert: values.cacert as string | undefined,
          cacrl: values.cacrl as string | undefined,
          namespace,
        },
        out,
      );
      return;
    }
    case 'delete':
      if (rest[0] === 'secret') {
        const { values, positionals } = parse({ namespace: { type: 'string', short: 'n' } });
        const { deleteSecret } = await import('./commands/secret.js');
        deleteSecret({ name: positionals[1], namespace: values.namespace as string | undefined }, out);
        return;
      }
      await applyOrDeleteFiles(command, parse);
      return;
    case 'apply':
      await applyOrDeleteFiles(command, parse);
      return;
    case 'analyze': {
      // istioctl spells it --use-kube=false; a bare --use-kube means true.
      for (const [i, arg] of rest.entries()) if (arg === '--use-kube') rest[i] = '--use-kube=true';
      const { values, positionals } = parse({
        filename: { type: 'string', short: 'f', multiple: true },
        recursive: { type: 'boolean', short: 'R' },
        namespace: { type: 'string', short: 'n' },
        'all-namespaces': { type: 'boolean', short: 'A' },
        'use-kube': { type: 'string', default: 'true' },
        output: { type: 'string', short: 'o', default: 'log' },
        'failure-threshold': { type: 'string', default: 'Error' },
        'output-threshold': { type: 'string', default: 'Info' },
        'list-analyzers': { type: 'boolean', short: 'L' },
      });
      const { analyzeCommand, listAnalyzers } = await import('./commands/analyze.js');
      if (values['list-analyzers'] === true) {
        listAnalyzers(out);
        return;
      }
      const useKube = String(values['use-kube']).toLowerCase();
      if (useKube !== 'true' && useKube !== 'false')
        throw new CliError(`analyze: --use-kube must be true or false, got "${values['use-kube']}"`, 2);
      process.exitCode = await analyzeCommand(
        {
          // istioctl also takes the files as arguments: `istioctl analyze a.yaml b.yaml`.
          files: [...((values.filename as string[] | undefined) ?? []), ...positionals],
          recursive: values.recursive === true,
          useKube: useKube === 'true',
          namespace: values.namespace as string | undefined,
          allNamespaces: values['all-namespaces'] === true,
          output: values.output as string,
          failureThreshold: values['failure-threshold'] as string,
          outputThreshold: values['output-threshold'] as string,
          pilot: values.pilot as string | undefined,
        },
        out,
        process.stderr,
      );
      return;
    }
    case 'get': {
      const { values, positionals } = parse({
        namespace: { type: 'string', short: 'n' },
        'all-namespaces': { type: 'boolean', short: 'A' },
        output: { type: 'string', short: 'o' },
      });
      const { get } = await import('./commands/get.js');
      await get(
        positionals[0],
        positionals[1],
        {
          namespace: values.namespace as string | undefined,
          allNamespaces: values['all-namespaces'] === true,
          output: values.output as string | undefined,
          pilot: values.pilot as string | undefined,
        },
        out,
      );
      return;
    }
    case 'status': {
      const { values } = parse({ output: { type: 'string', short: 'o' } });
      const { status } = await import('./commands/status.js');
      await status(
        { output: values.output as string | undefined, pilot: values.pilot as string | undefined },
        out,
      );
      return;
    }
    case 'proxy-config':
    case 'pc': {
      const { values, positionals } = parse({
        output: { type: 'string', short: 'o' },
        namespace: { type: 'string', short: 'n' },
        admin: { type: 'string' },
        fqdn: { type: 'string' },
        port: { type: 'string' },
        subset: { type: 'string' },
        direction: { type: 'string' },
        address: { type: 'string' },
        type: { type: 'string' },
        name: { type: 'string' },
        cluster: { type: 'string' },
        status: { type: 'string' },
      });
      const { PROXY_CONFIG_USAGE, proxyConfig } = await import('./commands/proxy-config.js');
      if (positionals.length > 2)
        throw new CliError(`proxy-config: unexpected "${positionals[2]}"; ${PROXY_CONFIG_USAGE}`, 2);
      const str = (k: string) => values[k] as string | undefined;
      await proxyConfig(
        {
          kind: positionals[0],
          proxy: positionals[1],
          namespace: str('namespace'),
          admin: str('admin'),
          pilot: str('pilot'),
          output: str('output'),
          filters: {
            fqdn: str('fqdn'),
            port: int(str('port'), '--port'),
            subset: str('subset'),
            direction: str('direction'),
            address: str('address'),
            type: str('type'),
            name: str('name'),
            cluster: str('cluster'),
            status: str('status'),
          },
        },
        out,
      );
      return;
    }
    case 'proxy-status':
    case 'ps': {
      const { values, positionals } = parse({
        namespace: { type: 'string', short: 'n' },
        admin: { type: 'string' },
      });
      if (positionals.length > 1)
        throw new CliError(
          `proxy-status: unexpected "${positionals[1]}"; usage: mizzen proxy-status [<proxy>]`,
          2,
        );
      const { proxyStatus } = await import('./commands/proxy-status.js');
      await proxyStatus(
        {
          proxy: positionals[0],
          namespace: values.namespace as string | undefined,
          admin: values.admin as string | undefined,
          pilot: values.pilot as string | undefined,
        },
        out,
      );
      return;
    }
    case 'dashboard': {
      const { values } = parse({ url: { type: 'string' }, 'no-open': { type: 'boolean' } });
      const { dashboard } = await import('./commands/dashboard.js');
      dashboard({ url: values.url as string | undefined, open: values['no-open'] !== true }, out);
      return;
    }
    case 'kube-inject': {
      const { values } = parse({
        filename: { type: 'string', short: 'f', multiple: true },
        image: { type: 'string' },
        'image-pull-policy': { type: 'string' },
        'discovery-address': { type: 'string' },
        'ca-address': { type: 'string' },
      });
      const { kubeInjectCommand } = await import('./commands/kube-inject.js');
      kubeInjectCommand(
        {
          files: (values.filename as string[] | undefined) ?? [],
          image: values.image as string | undefined,
          imagePullPolicy: values['image-pull-policy'] as string | undefined,
          discoveryAddress: values['discovery-address'] as string | undefined,
          caAddress: values['ca-address'] as string | undefined,
        },
        out,
      );
      return;
    }
    case 'version':
    case '--version':
      out.write('mizzen 0.1.0\n');
      return;
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      out.write(HELP);
      return;
    default:
      throw new CliError(`unknown command "${command}"; run \`mizzen help\``, 2);
  }
}

run(process.argv.slice(2)).catch((err: unknown) => {
  if (err instanceof CliError) {
    process.stderr.write(`error: ${err.message}\n`);
    process.exit(err.exitCode);
  }
  process.stderr.write(`error: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
