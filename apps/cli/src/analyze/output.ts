import { type AnalysisMessage, formatMessage, messageObject } from '@mizzen/analysis';
import { writeStructured } from '../output/structured.js';

export type OutputFormat = 'log' | 'json' | 'yaml';

/**
 * Prints messages as istioctl does: one line each (`log`), or an array of
 * objects; with nothing to say in `log` format, the ✔ line on stderr.
 */
export function printMessages(
  messages: readonly AnalysisMessage[],
  format: OutputFormat,
  target: string,
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): void {
  if (format !== 'log') {
    writeStructured(out, messages.map(messageObject), format);
    return;
  }
  if (messages.length === 0) {
    err.write(`\u2714 No validation issues found when analyzing ${target}.\n`);
    return;
  }
  for (const m of messages) out.write(`${formatMessage(m)}\n`);
}
