import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { certificateInfo, mintWorkloadToken } from '@mizzen/pki';
import { freePort } from '@mizzen/runtime';
import { CaClient } from '@mizzen/xds';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, enroll, onCleanup, tempDir } from './helpers.js';

afterEach(cleanup);

/** The citadel process as `mizzen up` or a pod starts it. */
const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'main.js');

function run(args: string[]) {
  return spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', timeout: 10_000 });
}

interface Running {
  child: ChildProcess;
  ready: Record<string, unknown>;
  exited: Promise<number | null>;
}

/** Starts citadel and resolves at its `citadel ready` log line. */
async function startProcess(args: string[]): Promise<Running> {
  const child = spawn(process.execPath, [main, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  onCleanup(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => {
    stderr += d.toString();
  });
  const ready = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      const entry = JSON.parse(line) as Record<string, unknown>;
      if (entry.msg === 'citadel ready') resolve(entry);
    });
    void exited.then((code) => reject(new Error(`citadel exited with ${code}: ${stderr}`)));
  });
  return { child, ready, exited };
}

/** Each case starts real Node processes; on a busy 2-core machine that takes seconds. */
const PROCESS_TIMEOUT = 30_000;

describe('citadel process', { timeout: PROCESS_TIMEOUT }, () => {
  it('rejects bad flags with one line naming the flag, exit code 2', () => {
    const cases: [string[], RegExp][] = [
      [['--grpc-port', 'abc'], /^citadel: --grpc-port must be a port number/],
      [['--max-workload-cert-ttl', 'forever'], /^citadel: --max-workload-cert-ttl must be a duration/],
      [['--kube-api', 'https://k', '--token-key', 'f'], /^citadel: use either --token-key/],
      [['--nope'], /^citadel: Unknown option '--nope'/],
    ];
    for (const [args, message] of cases) {
      const r = run(args);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr.split('\n')[0]).toMatch(message);
      expect(r.stderr).toMatch(/usage: citadel/);
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
  });

  it('fails to start with one line and exit 1 when the CA files are incomplete', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'ca-cert.pem'), 'x');
    const r = run(['--ca-dir', dir, '--grpc-port', '0', '--http-port', '0', '--host', '127.0.0.1']);
    expect(r.status).toBe(1);
    expect(r.stderr.trim()).toMatch(/^citadel: CA files in .* are incomplete: ca-key.pem missing$/);
  });

  it('serves CreateCertificate, keeps its root and token key across a restart, and stops on SIGTERM', async () => {
    const dir = tempDir();
    const [grpcPort, httpPort] = [await freePort(), await freePort()];
    const args = [
      '--ca-dir',
      dir,
      '--host',
      '127.0.0.1',
      '--grpc-port',
      String(grpcPort),
      '--http-port',
      String(httpPort),
    ];
    const first = await startProcess(args);
    expect(first.ready).toMatchObject({
      component: 'citadel',
      grpcPort,
      httpPort,
      ca: 'generated',
      authenticator: 'local-token',
    });

    const keyFile = path.join(dir, 'workload-token.key');
    expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
    expect(fs.statSync(path.join(dir, 'ca-key.pem')).mode & 0o777).toBe(0o600);
    const secret = fs.readFileSync(keyFile, 'utf8');
    const token = await mintWorkloadToken(secret, {
      namespace: 'default',
      serviceAccount: 'details',
      ttlSeconds: 60,
    });
    // gRPC is TLS by default, with a certificate citadel issued itself under the root it wrote.
    const client = new CaClient({
      address: `127.0.0.1:${grpcPort}`,
      rootCertificates: fs.readFileSync(path.join(dir, 'root-cert.pem'), 'utf8'),
    });
    onCleanup(() => client.close());
    const w = await enroll({ client }, token);
    expect(certificateInfo(w.chain[0]!).uris).toEqual(['spiffe://cluster.local/ns/default/sa/details']);
    const root = await (await fetch(`http://127.0.0.1:${httpPort}/root-cert.pem`)).text();
    expect(w.chain[1]).toBe(root);

    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);

    const second = await startProcess(args);
    expect(second.ready).toMatchObject({ ca: 'files', rootSerial: first.ready.rootSerial });
    const again = await enroll({ client }, token);
    expect(again.chain[1]).toBe(root);
    second.child.kill('SIGINT');
    expect(await second.exited).toBe(0);
  });
});
