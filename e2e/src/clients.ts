import { execFile, spawnSync } from 'node:child_process';

/** The command-line clients users test a mesh with: curl and openssl s_client, bounded in time. */

export interface CurlResult {
  /** curl's exit code: 0, or why it failed (7 refused, 28 timed out, 35 TLS handshake, 56 receive failure…). */
  code: number;
  stdout: string;
  stderr: string;
}

/** `curl -sS --max-time 10 …` (a different --max-time later in `args` wins). */
export function curl(args: string[]): Promise<CurlResult> {
  return new Promise((resolve) => {
    execFile('curl', ['-sS', '--max-time', '10', ...args], { encoding: 'utf8' }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });
}

/** `openssl s_client`: whether the handshake succeeded, and the certificate's subject when it did. */
export function sClient(port: number, args: string[]): { ok: boolean; subject?: string; out: string } {
  const r = spawnSync('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...args], {
    input: '',
    encoding: 'utf8',
    timeout: 10_000,
  });
  const out = `${r.stdout}${r.stderr}`;
  const subject = /^subject=(.*)$/m.exec(out)?.[1]?.trim();
  const ok = r.status === 0 && /Cipher is (?!\(NONE\))/.test(out);
  return { ok, ...(subject ? { subject } : {}), out };
}
