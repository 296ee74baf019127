import { execFile, spawnSync } from 'node:child_process';
import net from 'node:net';

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

/**
 * A TCP connection through a sidecar (HTTP CONNECT, as an app behind
 * HTTP_PROXY opens one): resolves with the first line the server sends.
 */
export function tcpThroughSidecar(outbound: number, target: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(outbound, '127.0.0.1', () =>
      s.write(`CONNECT ${target} HTTP/1.1\r\nhost: ${target}\r\n\r\n`),
    );
    let data = '';
    let tunneled = false;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no greeting through the tunnel: ${JSON.stringify(data)}`));
    }, 5000);
    s.on('data', (d) => {
      data += d.toString();
      if (!tunneled) {
        const end = data.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!data.startsWith('HTTP/1.1 200')) {
          clearTimeout(timer);
          s.destroy();
          reject(new Error(`CONNECT refused: ${data.split('\r\n')[0]}`));
          return;
        }
        tunneled = true;
        data = data.slice(end + 4);
      }
      const nl = data.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        s.end();
        resolve(data.slice(0, nl));
      }
    });
    s.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    // Closed before a greeting (nowhere to go): say so at once rather than at the timeout.
    s.once('close', () => {
      clearTimeout(timer);
      reject(
        new Error(
          `closed ${tunneled ? 'through the tunnel' : 'before CONNECT was answered'}: ${JSON.stringify(data)}`,
        ),
      );
    });
  });
}
