import fs from 'node:fs';
import path from 'node:path';
import { CliError } from '../errors.js';

export interface InputFile {
  source: string;
  text: string;
}

/** Reads `-f` arguments like kubectl: files, directories of *.yaml/*.yml/*.json, or `-` for stdin. */
export function readInputs(args: string[]): InputFile[] {
  if (args.length === 0)
    throw new CliError('no input: pass -f FILE (a file, a directory, or - for stdin)', 2);
  const out: InputFile[] = [];
  for (const arg of args) {
    if (arg === '-') {
      out.push({ source: '<stdin>', text: fs.readFileSync(0, 'utf8') });
      continue;
    }
    let stat: fs.Stats;
    try {
      stat = fs.statSync(arg);
    } catch {
      throw new CliError(`${arg}: no such file or directory`);
    }
    if (stat.isDirectory()) {
      const files = fs
        .readdirSync(arg)
        .filter((f) => /\.(ya?ml|json)$/.test(f))
        .sort();
      for (const f of files)
        out.push({ source: path.join(arg, f), text: fs.readFileSync(path.join(arg, f), 'utf8') });
    } else {
      out.push({ source: arg, text: fs.readFileSync(arg, 'utf8') });
    }
  }
  return out;
}
