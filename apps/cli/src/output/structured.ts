import { stringify } from 'yaml';
import { CliError } from '../errors.js';

export type StructuredFormat = 'json' | 'yaml';

/** `-o json|yaml` as given, or undefined for anything else (the caller's own formats). */
export function structuredFormat(output: string | undefined): StructuredFormat | undefined {
  return output === 'json' || output === 'yaml' ? output : undefined;
}

/** Writes a value as indented JSON or YAML. */
export function writeStructured(out: NodeJS.WritableStream, value: unknown, format: StructuredFormat): void {
  out.write(format === 'json' ? `${JSON.stringify(value, null, 2)}\n` : stringify(value));
}

/** The one error for an output format a command does not know. */
export function unknownOutput(output: string, known: string): CliError {
  return new CliError(`unknown output format "${output}" (use ${known})`, 2);
}
