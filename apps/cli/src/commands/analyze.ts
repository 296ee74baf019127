import {
  type AnalysisMessage,
  applyChange,
  atOrAbove,
  LEVELS,
  type Level,
  MESSAGE_TYPES,
  analyze as runAnalyzers,
  schemaMessages,
  sortMessages,
} from '@mizzen/analysis';
import { type ConfigResource, configKey } from '@mizzen/api';
import { readFileConfig } from '../analyze/files.js';
import { kubernetesFacts } from '../analyze/kubernetes.js';
import { readLiveConfig } from '../analyze/live.js';
import { type OutputFormat, printMessages } from '../analyze/output.js';
import { CliError } from '../errors.js';
import { pilotUrl } from '../pilot-client.js';

/** istioctl's exit code when messages at or above the failure threshold were found. */
export const EXIT_ISSUES_FOUND = 79;

export interface AnalyzeOptions {
  files: string[];
  recursive: boolean;
  useKube: boolean;
  namespace?: string;
  allNamespaces: boolean;
  output: string;
  failureThreshold: string;
  outputThreshold: string;
  pilot?: string;
}

const DOMAIN_SUFFIX = 'cluster.local';

function level(value: string, flag: string): Level {
  const found = LEVELS.find((l) => l.toLowerCase() === value.toLowerCase());
  if (!found) throw new CliError(`${flag} must be one of ${LEVELS.join(', ')}, got "${value}"`, 2);
  return found;
}

function outputFormat(value: string): OutputFormat {
  if (value === 'log' || value === 'json' || value === 'yaml') return value;
  throw new CliError(`--output must be log, json or yaml, got "${value}"`, 2);
}

/**
 * Every message about the config: the running mesh's (unless --use-kube=false)
 * with the files overlaid — a file's resource replaces the live one of the
 * same kind, namespace and name, nothing is applied — then the files' own
 * validation problems and the live config directory's.
 */
async function collect(opts: AnalyzeOptions): Promise<AnalysisMessage[]> {
  const files = readFileConfig(opts.files, opts.recursive);
  const facts = kubernetesFacts(files.kubernetes, DOMAIN_SUFFIX);
  const live = opts.useKube ? await readLiveConfig(pilotUrl(opts.pilot)) : undefined;
  const resources = applyChange(live?.resources ?? [], { applied: files.resources });
  const messages = runAnalyzers({
    resources,
    settings: { domainSuffix: DOMAIN_SUFFIX },
    services: [...(live?.services ?? []), ...facts.services],
    workloads: [...(live?.workloads ?? []), ...facts.workloads, ...workloadEntries(resources)],
    // Live, the credentials are pilot's own (Kubernetes Secrets or its credential directory): only files' are checked offline.
    ...(opts.useKube ? {} : { credentials: new Set(facts.credentials) }),
  }).map((m) => {
    const reference =
      m.origin && files.references.get(configKey({ kind: m.origin.kind, metadata: m.origin }));
    return reference ? { ...m, reference } : m;
  });
  return sortMessages([...schemaMessages([...files.issues, ...(live?.issues ?? [])]), ...messages]);
}

/** WorkloadEntries are workloads too: selectors may pick them. */
function workloadEntries(resources: readonly ConfigResource[]) {
  return resources.flatMap((r) =>
    r.kind === 'WorkloadEntry'
      ? [{ name: r.metadata.name, namespace: r.metadata.namespace, labels: r.spec.labels ?? {} }]
      : [],
  );
}

/**
 * `mizzen analyze`, as `istioctl analyze`: prints Istio's analyzer messages
 * for a namespace (or all), returns the exit code — 0, or 79 when a message
 * is at or above the failure threshold.
 */
export async function analyzeCommand(
  opts: AnalyzeOptions,
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): Promise<number> {
  const format = outputFormat(opts.output);
  const failure = level(opts.failureThreshold, '--failure-threshold');
  const shown = level(opts.outputThreshold, '--output-threshold');
  if (opts.allNamespaces && opts.namespace)
    throw new CliError('analyze: give either --namespace or --all-namespaces, not both', 2);
  if (!opts.useKube && opts.files.length === 0)
    throw new CliError(
      'analyze: --use-kube=false analyzes only files; give them with -f FILE or a directory',
      2,
    );
  const namespace = opts.namespace ?? 'default';
  const inScope = (m: AnalysisMessage) => opts.allNamespaces || !m.origin || m.origin.namespace === namespace;
  const all = (await collect(opts)).filter(inScope);
  const sorted = all.filter((m) => atOrAbove(m.type.level, shown));
  printMessages(sorted, format, opts.allNamespaces ? 'all namespaces' : `namespace: ${namespace}`, out, err);
  return all.some((m) => atOrAbove(m.type.level, failure)) ? EXIT_ISSUES_FOUND : 0;
}

/** `mizzen analyze -L`: the messages the analyzers report, code and name, as the README lists them. */
export function listAnalyzers(out: NodeJS.WritableStream): void {
  const types = Object.values(MESSAGE_TYPES).sort((a, b) => (a.code < b.code ? -1 : 1));
  for (const t of types) out.write(`${t.code}\t${t.level}\t${t.name}\n`);
}
