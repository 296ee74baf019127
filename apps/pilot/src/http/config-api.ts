import { type AnalysisSettings, analyzeChange, type ConfigChange, formatMessage } from '@mizzen/analysis';
import {
  type ConfigResource,
  configKey,
  type FileStore,
  formatIssue,
  parseConfig,
  resolveKind,
} from '@mizzen/api';
import type { FastifyInstance } from 'fastify';
import type { AggregateConfig } from '../config/aggregate.js';

interface ApplyBody {
  yaml?: unknown;
  source?: unknown;
  dryRun?: unknown;
}

/**
 * The config API `mizzen apply/get/delete` talk to. Every request is
 * validated whole before anything changes: one invalid document and nothing
 * is applied, and the answer names each document, field and reason.
 */
export function registerConfigApi(
  app: FastifyInstance,
  deps: { store: FileStore; config: AggregateConfig; mesh?: () => AnalysisSettings },
): void {
  app.get<{ Querystring: { kind?: string; namespace?: string; name?: string } }>(
    '/apis/config',
    async (req, reply) => {
      let kind: string | undefined;
      if (req.query.kind) {
        kind = resolveKind(req.query.kind);
        if (!kind) return reply.code(400).send({ errors: [`unknown resource kind "${req.query.kind}"`] });
      }
      const items = deps.config
        .entries()
        .filter(
          ({ resource: r }) =>
            (!kind || r.kind === kind) &&
            (!req.query.namespace || r.metadata.namespace === req.query.namespace),
        )
        .filter(({ resource: r }) => !req.query.name || r.metadata.name === req.query.name)
        .map(({ resource, source }) => ({ ...resource, source }));
      return { items };
    },
  );

  app.post<{ Body: ApplyBody }>('/apis/config/apply', async (req, reply) => {
    const parsed = parseBody(req.body);
    if ('error' in parsed) return reply.code(400).send({ errors: [parsed.error] });
    const result = parseConfig(parsed.yaml, parsed.source);
    const errors = result.issues.filter((i) => i.severity === 'error');
    const warnings = result.issues.filter((i) => i.severity === 'warning').map(formatIssue);
    if (errors.length) return reply.code(400).send({ errors: errors.map(formatIssue), warnings });
    if (result.resources.length === 0) {
      return reply.code(400).send({ errors: [`${parsed.source}: no resources found`], warnings });
    }
    // Valid, but Istio's analyzer has something to say once it is in force (a subset no rule defines…).
    warnings.push(...analyzerWarnings(deps, { applied: result.resources }));
    if (parsed.dryRun) {
      return { results: result.resources.map((r) => ({ ...identity(r), action: 'validated' })), warnings };
    }
    const outcomes = deps.store.apply(result.resources);
    return { results: outcomes, warnings };
  });

  app.post<{ Body: ApplyBody }>('/apis/config/delete', async (req, reply) => {
    const parsed = parseBody(req.body);
    if ('error' in parsed) return reply.code(400).send({ errors: [parsed.error] });
    const result = parseConfig(parsed.yaml, parsed.source);
    // Deleting needs only identities: spec problems in the file do not block it, unknown kinds and bad YAML do.
    const fatal = result.issues.filter((i) => i.severity === 'error' && !i.path.startsWith('spec'));
    if (fatal.length) return reply.code(400).send({ errors: fatal.map(formatIssue) });
    if (result.identities.length === 0)
      return reply.code(400).send({ errors: [`${parsed.source}: no resources found`] });
    const keys = result.identities.map((i) => i.key);
    const fromDirectory = keys.filter(
      (k) => !deps.store.get(k) && deps.config.entries().some((e) => configKey(e.resource) === k),
    );
    if (fromDirectory.length) {
      return reply.code(409).send({
        errors: fromDirectory.map(
          (k) =>
            `${k} comes from the config directory, not from mizzen apply; remove it from its file instead`,
        ),
      });
    }
    // What goes may leave routes behind (a subset no rule defines any more): Istio's analyzer says so.
    const warnings = analyzerWarnings(deps, { deleted: keys.filter((k) => deps.store.get(k)) });
    const outcomes = deps.store.delete(keys);
    return { results: outcomes, warnings };
  });
}

/** The analyzer's messages about a change, once it is in force (see analyzeChange). */
function analyzerWarnings(
  deps: { config: AggregateConfig; mesh?: () => AnalysisSettings },
  change: ConfigChange,
): string[] {
  const settings = deps.mesh?.() ?? { domainSuffix: 'cluster.local' };
  return analyzeChange({ resources: deps.config.list(), settings }, change).map(formatMessage);
}

function identity(r: ConfigResource) {
  return { kind: r.kind, namespace: r.metadata.namespace, name: r.metadata.name };
}

function parseBody(
  body: ApplyBody | undefined,
): { yaml: string; source: string; dryRun: boolean } | { error: string } {
  if (!body || typeof body.yaml !== 'string')
    return { error: 'request body must be JSON with a "yaml" string' };
  const source = typeof body.source === 'string' && body.source ? body.source : 'request';
  return { yaml: body.yaml, source, dryRun: body.dryRun === true };
}
