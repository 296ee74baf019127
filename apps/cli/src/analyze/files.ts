import {
  type ConfigResource,
  configKey,
  formatIssue,
  parseConfigLocated,
  type ValidationIssue,
} from '@mizzen/api';
import { isNode, LineCounter, parseAllDocuments } from 'yaml';
import { inputPaths, readInput } from '../commands/files.js';
import { CliError } from '../errors.js';
import { isKubernetesObject } from './kubernetes.js';

/** istioctl's exit code for input it cannot read (a missing file, a YAML syntax error). */
export const EXIT_DATA_ERROR = 65;

export interface FileConfig {
  /** Valid Istio resources from the files. */
  resources: ConfigResource[];
  /** `file:line` where each resource starts, by configKey. */
  references: Map<string, string>;
  /** Validation problems in Istio documents (IST0106 / IST0133). */
  issues: ValidationIssue[];
  /** Every document that is a Kubernetes object (Service, Secret, Deployment…). */
  kubernetes: unknown[];
}

/** The line each document (or List item) starts on, by document number and item. */
function startLines(text: string): Map<string, number> {
  const counter = new LineCounter();
  const out = new Map<string, number>();
  for (const [i, doc] of parseAllDocuments(text, { lineCounter: counter }).entries()) {
    const contents = doc.contents;
    if (!isNode(contents) || !contents.range) continue;
    out.set(`${i + 1}`, counter.linePos(contents.range[0]).line);
    const items = doc.getIn(['items'], true);
    if (isNode(items) && 'items' in items && Array.isArray(items.items))
      for (const [j, item] of items.items.entries())
        if (isNode(item) && item.range) out.set(`${i + 1}.${j}`, counter.linePos(item.range[0]).line);
  }
  return out;
}

/**
 * Reads and validates the files to analyze. Unreadable input (a missing
 * file, a YAML syntax error) stops with istioctl's data-error exit code;
 * Kubernetes objects are kept apart for the facts they give, and invalid
 * Istio resources become validation issues.
 */
export function readFileConfig(args: readonly string[], recursive: boolean): FileConfig {
  const out: FileConfig = { resources: [], references: new Map(), issues: [], kubernetes: [] };
  for (const file of inputPaths(args, recursive, EXIT_DATA_ERROR)) {
    const { source, text } = readInput(file, EXIT_DATA_ERROR);
    const { located, issues } = parseConfigLocated(text, source);
    const syntax = issues.find((i) => i.syntax);
    if (syntax) throw new CliError(formatIssue(syntax), EXIT_DATA_ERROR);
    const docs = parseAllDocuments(text).map((d) => d.toJS({ maxAliasCount: 100 }) as unknown);
    const kubernetes = new Set(docs.flatMap((d, i) => (isKubernetesObject(d) ? [i + 1] : [])));
    out.kubernetes.push(...docs.filter(isKubernetesObject));
    // A Kubernetes object is not Istio config: its "unknown kind" is no problem here.
    out.issues.push(...issues.filter((i) => !(kubernetes.has(i.document) && i.path === 'kind')));
    const lines = startLines(text);
    for (const l of located) {
      const line = lines.get(l.item === undefined ? `${l.document}` : `${l.document}.${l.item}`);
      out.resources.push(l.resource);
      out.references.set(configKey(l.resource), line === undefined ? source : `${source}:${line}`);
    }
  }
  return out;
}
