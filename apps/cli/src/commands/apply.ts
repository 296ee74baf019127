import { CliError } from '../errors.js';
import { pilotRequest, pilotUrl } from '../pilot-client.js';
import { readInputs } from './files.js';

interface ApplyResponse {
  results?: { kind: string; namespace: string; name: string; action: string }[];
  errors?: string[];
  warnings?: string[];
}

const GROUP: Record<string, string> = {
  VirtualService: 'networking.istio.io',
  DestinationRule: 'networking.istio.io',
  Gateway: 'networking.istio.io',
  ServiceEntry: 'networking.istio.io',
  WorkloadEntry: 'networking.istio.io',
  Sidecar: 'networking.istio.io',
  PeerAuthentication: 'security.istio.io',
  AuthorizationPolicy: 'security.istio.io',
  RequestAuthentication: 'security.istio.io',
  Telemetry: 'telemetry.istio.io',
  RateLimitPolicy: 'policy.mizzen.io',
};

/** `virtualservice.networking.istio.io/reviews`, as kubectl prints it. */
export function resourceRef(kind: string, name: string): string {
  return `${kind.toLowerCase()}${GROUP[kind] ? `.${GROUP[kind]}` : ''}/${name}`;
}

/**
 * `mizzen apply -f` and `mizzen delete -f`: every file is validated by pilot
 * before anything changes; all files are sent as one batch per file, and the
 * first file with an error stops the run with nothing from it applied.
 */
export async function applyOrDelete(
  verb: 'apply' | 'delete',
  files: string[],
  opts: { pilot?: string; dryRun?: boolean },
  out: NodeJS.WritableStream,
): Promise<void> {
  const inputs = readInputs(files);
  const base = pilotUrl(opts.pilot);
  // Validate everything first (dry run) so a bad second file never leaves the first half-applied.
  if (verb === 'apply') {
    for (const input of inputs) {
      const { status, body } = await pilotRequest<ApplyResponse>(base, '/apis/config/apply', {
        method: 'POST',
        body: { yaml: input.text, source: input.source, dryRun: true },
      });
      if (status !== 200) throw new CliError((body.errors ?? [`pilot answered ${status}`]).join('\n'));
    }
  }
  for (const input of inputs) {
    const { status, body } = await pilotRequest<ApplyResponse>(base, `/apis/config/${verb}`, {
      method: 'POST',
      body: { yaml: input.text, source: input.source, dryRun: opts.dryRun === true },
    });
    for (const w of body.warnings ?? []) out.write(`${w}\n`);
    if (status !== 200) throw new CliError((body.errors ?? [`pilot answered ${status}`]).join('\n'));
    for (const r of body.results ?? []) {
      const action = opts.dryRun ? `${r.action} (dry run)` : r.action;
      out.write(`${resourceRef(r.kind, r.name)} ${action}\n`);
    }
  }
}
