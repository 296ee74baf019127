import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { mintWorkloadToken } from '@mizzen/pki';
import { freePort } from '@mizzen/runtime';
import { CaClient, startOtlpTraceReceiver } from '@mizzen/xds';
import { afterEach, describe, expect, it } from 'vitest';
import { cleanup, enroll, onCleanup, tempDir } from './helpers.js';

afterEach(cleanup);

/** Citadel's own traces with OpenTelemetry's Node SDK, turned on by the standard OTEL_* environment. */
const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'main.js');

describe("citadel's own traces", { timeout: 30_000 }, () => {
  it('exports a server span per CreateCertificate, with the identity issued or the refusal', async () => {
    const receiver = await startOtlpTraceReceiver();
    onCleanup(() => receiver.close());
    const dir = tempDir();
    const [grpcPort, httpPort] = [await freePort(), await freePort()];
    const child: ChildProcess = spawn(
      process.execPath,
      [
        main,
        '--ca-dir',
        dir,
        '--host',
        '127.0.0.1',
        '--grpc-port',
        String(grpcPort),
        '--http-port',
        String(httpPort),
      ],
      {
        stdio: ['ignore', 'pipe', 'ignore'],
        env: {
          ...process.env,
          OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
          OTEL_SERVICE_NAME: 'istio-citadel',
          OTEL_BSP_SCHEDULE_DELAY: '100',
        },
      },
    );
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    onCleanup(async () => {
      if (child.exitCode === null) child.kill('SIGKILL');
      await exited;
    });
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout! }).on('line', (line) => {
        if (line.includes('"citadel ready"')) resolve();
      });
      void exited.then((code) => reject(new Error(`citadel exited with ${code}`)));
    });
    const secret = fs.readFileSync(path.join(dir, 'workload-token.key'), 'utf8');
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
    await enroll({ client }, token);
    await enroll({ client }, 'not-a-token').catch(() => undefined);
    const deadline = Date.now() + 15_000;
    while (receiver.spans.length < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const spans = receiver.spans.filter(
      (s) => s.name === 'istio.v1.auth.IstioCertificateService/CreateCertificate',
    );
    expect(spans).toHaveLength(2);
    // OTEL_SERVICE_NAME wins over the component's name; SPAN_KIND_SERVER is 2.
    expect(spans.every((s) => s.service === 'istio-citadel' && s.kind === 2)).toBe(true);
    expect(spans.map((s) => s.attributes)).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          'rpc.method': 'CreateCertificate',
          'rpc.grpc.status_code': '0',
          'mizzen.identity': 'spiffe://cluster.local/ns/default/sa/details',
        }),
        expect.objectContaining({ 'rpc.grpc.status_code': '16', 'mizzen.refusal': 'UNAUTHENTICATED' }),
      ]),
    );
  });
});
