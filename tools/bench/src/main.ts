import os from 'node:os';
import { parseArgs } from 'node:util';
import { formatReport } from './report.js';
import { type RunOptions, runScenario, type ScenarioResult } from './run.js';
import { startBenchMesh } from './setup.js';

/**
 * Requests/second and latency for the same backend reached directly, through
 * one sidecar (client side only) and through two (client and server side),
 * measured side by side in one run with autocannon.
 */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      duration: { type: 'string', default: '10' },
      connections: { type: 'string', default: '32' },
      warmup: { type: 'string', default: '2' },
    },
  });
  const opts: RunOptions = {
    durationSec: Number(values.duration),
    connections: Number(values.connections),
    warmupSec: Number(values.warmup),
  };
  for (const [k, v] of Object.entries(opts)) {
    if (!Number.isFinite(v) || v < 0) throw new Error(`--${k} must be a non-negative number`);
  }
  const command = `npm run bench -- --duration ${opts.durationSec} --connections ${opts.connections} --warmup ${opts.warmupSec}`;
  process.stderr.write(`starting pilot, two sidecars and a backend… (${os.cpus().length} CPUs)\n`);
  const mesh = await startBenchMesh();
  const results: ScenarioResult[] = [];
  try {
    const scenarios = [
      { name: 'direct', port: mesh.backendPort, path: '/', host: `127.0.0.1:${mesh.backendPort}` },
      {
        name: 'one sidecar',
        port: mesh.clientProxyPort,
        path: 'http://bench-direct:8080/',
        host: 'bench-direct:8080',
      },
      { name: 'two sidecars', port: mesh.clientProxyPort, path: 'http://bench:8080/', host: 'bench:8080' },
    ];
    for (const s of scenarios) {
      process.stderr.write(`running ${s.name}…\n`);
      results.push(await runScenario(s, opts));
    }
  } finally {
    await mesh.stop();
  }
  process.stdout.write(`${formatReport(results, opts, command)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).message}\n`);
  process.exit(1);
});
