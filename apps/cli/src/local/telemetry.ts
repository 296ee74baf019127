import fs from 'node:fs';
import path from 'node:path';
import { request } from 'undici';
import { stringify } from 'yaml';

/**
 * The mesh config `mizzen up` gives pilot (Istio's MeshConfig YAML): every
 * proxy sends its spans and access logs to the local telemetry collector over
 * OTLP/HTTP, writes JSON access logs to its stdout (the process log), samples
 * every new trace (as Istio's demo profile does), and reports Istio's metrics
 * for the collector to scrape.
 */
export function meshConfig(host: string, otlpHttpPort: number): Record<string, unknown> {
  return {
    accessLogFile: '/dev/stdout',
    accessLogEncoding: 'JSON',
    enableTracing: true,
    defaultConfig: { tracing: { sampling: 100 } },
    extensionProviders: [
      {
        name: 'mizzen-tracing',
        opentelemetry: { service: host, port: otlpHttpPort, http: { path: '/v1/traces', timeout: '5s' } },
      },
      {
        name: 'mizzen-access-logs',
        envoyOtelAls: { service: host, port: otlpHttpPort, logName: 'mizzen-access-log' },
      },
    ],
    defaultProviders: {
      tracing: ['mizzen-tracing'],
      metrics: ['prometheus'],
      accessLogging: ['envoy', 'mizzen-access-logs'],
    },
  };
}

/** Writes the mesh config file; returns its path. */
export function writeMeshConfig(file: string, host: string, otlpHttpPort: number): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(
    file,
    `# Written by \`mizzen up\`: Istio MeshConfig for this run (telemetry to the local collector).\n${stringify(meshConfig(host, otlpHttpPort))}`,
  );
  return file;
}

/** True when the collector answers /healthz (ok or degraded: it serves either way). */
export async function collectorReady(base: string): Promise<true | string> {
  try {
    const res = await request(`${base}/healthz`, { headersTimeout: 2000, bodyTimeout: 2000 });
    await res.body.dump();
    return res.statusCode === 200 || res.statusCode === 503 ? true : `collector answered ${res.statusCode}`;
  } catch (err) {
    return `collector not answering (${(err as Error).message})`;
  }
}
