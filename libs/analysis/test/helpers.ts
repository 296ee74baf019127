import { type ConfigResource, parseConfig } from '@mizzen/api';
import { type AnalysisInput, analyze, formatMessage } from '../src/index.js';

/** Parses YAML documents into resources, each a second younger than the one before (document order is age order). */
export function resources(yaml: string): ConfigResource[] {
  const result = parseConfig(yaml, 'test.yaml');
  const errors = result.issues.filter((i) => i.severity === 'error');
  if (errors.length) throw new Error(errors.map((e) => e.message).join('\n'));
  return result.resources.map((r, i) => ({
    ...r,
    metadata: { ...r.metadata, creationTimestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, i)).toISOString() },
  })) as ConfigResource[];
}

/** The istioctl lines the analyzers print for some YAML. */
export function lines(yaml: string, extra: Omit<Partial<AnalysisInput>, 'resources'> = {}): string[] {
  return analyze({ resources: resources(yaml), settings: { domainSuffix: 'cluster.local' }, ...extra }).map(
    formatMessage,
  );
}
