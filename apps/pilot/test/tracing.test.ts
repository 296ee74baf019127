import { type ChildProcess, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '@mizzen/runtime';
import { startOtlpTraceReceiver } from '@mizzen/xds';
import { afterAll, describe, expect, it } from 'vitest';

/** Pilot's own traces with OpenTelemetry's Node SDK, turned on by the standard OTEL_* environment. */
const main = path.resolve(import.meta.dirname, '..', 'dist', 'main.js');

describe("pilot's own traces", { timeout: 30_000 }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-pilot-traces-'));
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const c of children) c.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('exports a span per push over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is set, and flushes on SIGTERM', async () => {
    const receiver = await startOtlpTraceReceiver();
    fs.mkdirSync(path.join(dir, 'config'));
    const [xds, http] = [await freePort(), await freePort()];
    const child = spawn(
      process.execPath,
      [
        main,
        '--host',
        '127.0.0.1',
        '--xds-port',
        String(xds),
        '--http-port',
        String(http),
        '--config-dir',
        path.join(dir, 'config'),
        '--store',
        path.join(dir, 'store.json'),
        '--registrations',
        path.join(dir, 'registrations.json'),
      ],
      {
        stdio: 'ignore',
        // A long batch delay: the span can only arrive through the flush at shutdown.
        env: { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '60000' },
      },
    );
    children.push(child);
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      const deadline = Date.now() + 20_000;
      while (
        !(await fetch(`http://127.0.0.1:${http}/ready`).then(
          (r) => r.ok,
          () => false,
        ))
      ) {
        if (Date.now() > deadline) throw new Error('pilot did not become ready');
        await new Promise((r) => setTimeout(r, 100));
      }
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      const push = receiver.spans.find((s) => s.name === 'pilot.push');
      expect(push).toMatchObject({ service: 'pilot', attributes: { 'mizzen.push.reason': 'startup' } });
      expect(push?.attributes['mizzen.push.version']).toBeDefined();
    } finally {
      await receiver.close();
    }
  });
});
