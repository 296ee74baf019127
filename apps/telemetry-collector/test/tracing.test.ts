import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@mizzen/runtime';
import { afterAll, describe, expect, it } from 'vitest';
import { eventually, getJson } from './helpers/collector.js';
import { jsonServer } from './helpers/servers.js';

/** The collector's own traces with OpenTelemetry's Node SDK, turned on by the standard OTEL_* environment. */
const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'main.js');

describe("the collector's own traces", { timeout: 30_000 }, () => {
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const c of children) c.kill('SIGKILL');
  });

  it('exports a span per scrape round — here to its own OTLP receiver, where the query API finds it', async () => {
    const pilot = await jsonServer({ '/debug/syncz': () => [] });
    const [http, otlpHttp, otlpGrpc] = [await freePort(), await freePort(), await freePort()];
    const child = spawn(
      process.execPath,
      [
        main,
        '--host',
        '127.0.0.1',
        '--http-port',
        String(http),
        '--otlp-http-port',
        String(otlpHttp),
        '--otlp-grpc-port',
        String(otlpGrpc),
        '--pilot',
        pilot.url,
        '--scrape-interval',
        '1s',
      ],
      {
        stdio: 'ignore',
        env: {
          ...process.env,
          REDIS_URL: '',
          OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${otlpHttp}`,
          OTEL_BSP_SCHEDULE_DELAY: '200',
        },
      },
    );
    children.push(child);
    try {
      await eventually(
        async () => {
          const services = await getJson<{ services: string[] }>(
            `http://127.0.0.1:${http}/api/trace-services`,
          )
            .then((r) => r.services)
            .catch((): string[] => []);
          return services.includes('telemetry-collector') ? true : undefined;
        },
        20_000,
        'the collector among the trace services',
      );
      const { traces } = await getJson<{ traces: { rootName?: string; name?: string }[] }>(
        `http://127.0.0.1:${http}/api/traces?service=telemetry-collector&lookback=5m`,
      );
      expect(JSON.stringify(traces)).toContain('collector.scrape');
    } finally {
      child.kill('SIGTERM');
      await pilot.close();
    }
  });
});
