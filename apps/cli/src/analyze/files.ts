import {
  type ConfigResource,
  configKey,
  formatIssue,
  parseConfigLocated,
  type ValidationIssue,
} from '@mizzen/api';
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
    // One parse gives the Istio resources with their lines and every document's value.
    const { located, issues, documents } = parseConfigLocated(text, source);
    const syntax = issues.find((i) => i.syntax);
    if (syntax) throw new CliError(formatIssue(syntax), EXIT_DATA_ERROR);
    const kubernetes = new Set(documents.flatMap((d, i) => (isKubernetesObject(d) ? [i + 1] : [])));
    out.kubernetes.push(...documents.filter(isKubernetesObject));
    // A Kubernetes object is not Istio config: its "unknown kind" is no problem here.
    out.issues.push(...issues.filter((i) => !(kubernetes.has(i.document) && i.path === 'kind')));
    for (const l of located) {
      out.resources.push(l.resource);
      out.references.set(configKey(l.resource), l.line === undefined ? source : `${source}:${l.line}`);
    }
  }
  return out;
}
