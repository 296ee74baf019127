import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { KINDS, type Kind, parseConfig, type ValidationIssue } from '../src/index.js';

export interface Found {
  severity: 'error' | 'warning';
  path: string;
  message: string;
}

/** A resource of `kind` as YAML, with `spec`. */
export function resource(
  kind: Kind,
  spec: unknown,
  metadata: Record<string, unknown> = { name: 'test' },
): string {
  const info = KINDS[kind];
  return stringify({ apiVersion: `${info.group}/${info.versions[0]}`, kind, metadata, spec });
}

/** Parses one resource and returns its issues as {severity, path, message}. */
export function issuesOf(kind: Kind, spec: unknown, metadata?: Record<string, unknown>): Found[] {
  return simplify(parseConfig(resource(kind, spec, metadata), 'test.yaml').issues);
}

export function simplify(issues: ValidationIssue[]): Found[] {
  return issues.map(({ severity, path, message }) => ({ severity, path, message }));
}

export function errorsOf(kind: Kind, spec: unknown, metadata?: Record<string, unknown>): Found[] {
  return issuesOf(kind, spec, metadata).filter((i) => i.severity === 'error');
}

export function warningsOf(kind: Kind, spec: unknown, metadata?: Record<string, unknown>): Found[] {
  return issuesOf(kind, spec, metadata).filter((i) => i.severity === 'warning');
}

/** A temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = 'mizzen-api-'): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

/** Resolves when `arm`'s event fires, rejects after `ms` (no blind sleeps). */
export function within<T>(
  ms: number,
  what: string,
  arm: (resolve: (v: T) => void) => () => void,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let disarm: () => void = () => {};
    const timer = setTimeout(() => {
      disarm();
      reject(new Error(`timed out after ${ms}ms waiting for ${what}`));
    }, ms);
    disarm = arm((v) => {
      clearTimeout(timer);
      disarm();
      resolve(v);
    });
  });
}
