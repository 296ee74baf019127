import fs from 'node:fs';
import path from 'node:path';
import { CliError } from '../errors.js';

export interface InputFile {
  source: string;
  text: string;
}

/**
 * The files `-f` arguments name, like kubectl: a file, the *.yaml/*.yml/*.json
 * of a directory (with `recursive`, of its subdirectories too), or `-` for
 * stdin. A missing path exits with `exitCode`.
 */
export function inputPaths(args: readonly string[], recursive = false, exitCode = 1): string[] {
  return args.flatMap((arg) => {
    if (arg === '-') return [arg];
    let stat: fs.Stats;
    try {
      stat = fs.statSync(arg);
    } catch {
      throw new CliError(`${arg}: no such file or directory`, exitCode);
    }
    if (!stat.isDirectory()) return [arg];
    return fs
      .readdirSync(arg, { withFileTypes: true })
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
      .flatMap((e) => {
        const p = path.join(arg, e.name);
        if (e.isDirectory()) return recursive ? inputPaths([p], true, exitCode) : [];
        return /\.(ya?ml|json)$/.test(e.name) ? [p] : [];
      });
  });
}

/** One input's text (`-`: stdin); an unreadable file exits with `exitCode`. */
export function readInput(file: string, exitCode = 1): InputFile {
  try {
    return {
      source: file === '-' ? '<stdin>' : file,
      text: fs.readFileSync(file === '-' ? 0 : file, 'utf8'),
    };
  } catch (err) {
    throw new CliError(
      `${file}: cannot read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      exitCode,
    );
  }
}

/** Reads `-f` arguments like kubectl: files, directories of *.yaml/*.yml/*.json, or `-` for stdin. */
export function readInputs(args: string[]): InputFile[] {
  if (args.length === 0)
    throw new CliError('no input: pass -f FILE (a file, a directory, or - for stdin)', 2);
  return inputPaths(args).map((file) => readInput(file));
}
