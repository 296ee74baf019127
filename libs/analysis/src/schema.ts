import type { ValidationIssue } from '@mizzen/api';
import { type AnalysisMessage, msg, type Origin } from './messages.js';

/**
 * IST0106 SchemaValidationError (the resource is rejected) and IST0133
 * SchemaWarning (it is kept) for the problems validation found, with the
 * file and line they point at as the message's reference.
 */
export function schemaMessages(issues: readonly ValidationIssue[]): AnalysisMessage[] {
  return issues.map((i) => {
    const origin: Origin | undefined =
      i.kind && i.name ? { kind: i.kind, namespace: i.namespace ?? 'default', name: i.name } : undefined;
    const detail = `${i.path ? `${i.path}: ` : ''}${i.message}`;
    const m =
      i.severity === 'error' ? msg.schemaValidationError(origin, detail) : msg.schemaWarning(origin, detail);
    const reference = `${i.source}${i.line !== undefined ? `:${i.line}` : ''}`;
    return { ...m, reference };
  });
}
