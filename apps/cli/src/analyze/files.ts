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

/** A file's YAML documents as values, with the line each document (or List item) starts on. */
interface Documents {
  values: unknown[];
  /** By document number (`2`) and, in a List, item (`2.0`). */
  startLines: Map<string, number>;
}

/**
 * Parses the text once for both what the analyzers read (the values) and
 * where messages point (the lines). `parseConfigLocated` still parses on its
 * own: it takes only text.
 */
function readDocuments(text: string): Documents {
  const counter = new LineCounter();
  const out: Documents = { values: [], startLines: new Map() };
  for (const [i, doc] of parseAllDocuments(text, { lineCounter: counter }).entries()) {
    out.values.push(doc.toJS({ maxAliasCount: 100 }));
    const contents = doc.contents;
    if (!isNode(contents) || !contents.range) continue;
    out.startLines.set(`${i + 1}`, counter.linePos(contents.range[0]).line);
    const items = doc.getIn(['items'], true);
    if (isNode(items) && 'items' in items && Array.isArray(items.items))
      for (const [j, item] of items.items.entries())
        if (isNode(item) && item.range)
          out.startLines.set(`${i + 1}.${j}`, counter.linePos(item.range[0]).line);
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
    const { values: docs, startLines } = readDocuments(text);
    const kubernetes = new Set(docs.flatMap((d, i) => (isKubernetesObject(d) ? [i + 1] : [])));
    out.kubernetes.push(...docs.filter(isKubernetesObject));
    // A Kubernetes object is not Istio config: its "unknown kind" is no problem here.
    out.issues.push(...issues.filter((i) => !(kubernetes.has(i.document) && i.path === 'kind')));
    for (const l of located) {
      const line = startLines.get(l.item === undefined ? `${l.document}` : `${l.document}.${l.item}`);
      out.resources.push(l.resource);
      out.references.set(configKey(l.resource), line === undefined ? source : `${source}:${line}`);
    }
  }
  return out;
}
