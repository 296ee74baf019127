import os from 'node:os';
import { parseArgs } from 'node:util';
import { type RedisServer, startRedisServer } from '@mizzen/ratelimit';
import { formatReport } from './report.js';
import { type RunOptions, runScenario, type Scenario, type ScenarioResult } from './run.js';
import { type BenchTargets, LIMITED_SERVICES, startBenchMesh } from './setup.js';

const SUITES = ['mesh', 'ratelimit'] as const;
type Suite = (typeof SUITES)[number];

const through = (mesh: BenchTargets, name: string, service: string): Scenario => ({
  name,
  port: mesh.clientProxyPort,
  path: `http://${service}:8080/`,
  host: `${service}:8080`,
});

/**
 * `mesh`: the same backend reached directly, through one sidecar (client
 * side only) and through two (client and server side, mutual TLS between
 * them as in `mizzen up`).
 * `ratelimit`: through two sidecars without a policy, and with a
 * RateLimitPolicy on the server sidecar whose counters live in its memory or
 * in a real redis-server (started for the run): what counting costs.
 */
function scenarios(suite: Suite, mesh: BenchTargets): Scenario[] {
  if (suite === 'ratelimit') {
    const [memory, redis] = LIMITED_SERVICES;
    return [
      through(mesh, 'two sidecars (mTLS)', 'bench'),
      through(mesh, 'two sidecars (mTLS) + limit (memory)', memory),
      through(mesh, 'two sidecars (mTLS) + limit (Redis)', redis),
    ];
  }
  return [
    { name: 'direct', port: mesh.backendPort, path: '/', host: `127.0.0.1:${mesh.backendPort}` },
    through(mesh, 'one sidecar', 'bench-direct'),
    through(mesh, 'two sidecars (mTLS)', 'bench'),
  ];
}

/** Requests/second and latency of the suite's scenarios, measured side by side in one run with autocannon. */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      suite: { type: 'string', default: 'mesh' },
      duration: { type: 'string', default: '10' },
      connections: { type: 'string', default: '32' },
      warmup: { type: 'string', default: '2' },
    },
  });
  const suite = values.suite as Suite;
  if (!SUITES.includes(suite)) throw new Error(`--suite must be one of ${SUITES.join(', ')}`);
  const opts: RunOptions = {
    durationSec: Number(values.duration),
    connections: Number(values.connections),
    warmupSec: Number(values.warmup),
  };
  for (const [k, v] of Object.entries(opts)) {
    if (!Number.isFinite(v) || v < 0) throw new Error(`--${k} must be a non-negative number`);
  }
  const command = `npm run bench -- --suite ${suite} --duration ${opts.durationSec} --connections ${opts.connections} --warmup ${opts.warmupSec}`;
  let redis: RedisServer | undefined;
  if (suite === 'ratelimit') {
    process.stderr.write('starting redis-server…\n');
    redis = await startRedisServer();
  }
  process.stderr.write(`starting pilot, the sidecars and a backend… (${os.cpus().length} CPUs)\n`);
  const results: ScenarioResult[] = [];
  try {
    const mesh = await startBenchMesh({ rateLimitRedisUrl: redis?.url });
    try {
      for (const s of scenarios(suite, mesh)) {
        process.stderr.write(`running ${s.name}…\n`);
        results.push(await runScenario(s, opts));
      }
    } finally {
      await mesh.stop();
    }
  } finally {
    await redis?.stop();
  }
  process.stdout.write(`${formatReport(results, opts, command)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${(err as Error).message}\n`);
  process.exit(1);
});
