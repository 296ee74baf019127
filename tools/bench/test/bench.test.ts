import { startRedisServer } from '@mizzen/ratelimit';
import { describe, expect, it } from 'vitest';
import { formatReport } from '../src/report.js';
import { runScenario } from '../src/run.js';
import { LIMITED_SERVICES, startBenchMesh } from '../src/setup.js';

describe('benchmark', () => {
  it('formats results side by side with the reproduce command', () => {
    const text = formatReport(
      [
        { name: 'direct', requestsPerSec: 10000, p50Ms: 1, p99Ms: 3, requests: 100000, errors: 0, non2xx: 0 },
        {
          name: 'two sidecars',
          requestsPerSec: 2500,
          p50Ms: 4,
          p99Ms: 12.5,
          requests: 25000,
          errors: 1,
          non2xx: 2,
        },
      ],
      { durationSec: 10, connections: 32, warmupSec: 2 },
      'npm run bench',
    );
    expect(text).toContain('| two sidecars |  2500 |       25% |');
    expect(text).toContain('12.50');
    expect(text).toMatch(/\|\s+3 \|$/m);
    expect(text).toContain('reproduce: npm run bench');
  });

  // A smoke run of a fixed number of requests so the benchmark cannot rot: every scenario serves
  // every request, none errors. No timing asserted (a loaded machine only makes it slower).
  it('drives the same backend directly and through one and two real sidecars', async () => {
    const mesh = await startBenchMesh();
    try {
      const opts = { durationSec: 20, connections: 4, warmupSec: 0, amount: 200 };
      const direct = await runScenario(
        { name: 'direct', port: mesh.backendPort, path: '/', host: 'x' },
        opts,
      );
      const one = await runScenario(
        {
          name: 'one',
          port: mesh.clientProxyPort,
          path: 'http://bench-direct:8080/',
          host: 'bench-direct:8080',
        },
        opts,
      );
      const two = await runScenario(
        { name: 'two', port: mesh.clientProxyPort, path: 'http://bench:8080/', host: 'bench:8080' },
        opts,
      );
      for (const r of [direct, one, two]) {
        expect(r.requests, r.name).toBe(200);
        expect(r.errors + r.non2xx, r.name).toBe(0);
      }
    } finally {
      await mesh.stop();
    }
  }, 60_000);

  // The rate limit suite's smoke run: sidecars counting every request in memory and in a real Redis still serve.
  it('drives two sidecars behind a never-rejecting rate limit, counted in memory and in Redis', async () => {
    const redis = await startRedisServer();
    try {
      const mesh = await startBenchMesh({ rateLimitRedisUrl: redis.url });
      try {
        const opts = { durationSec: 20, connections: 4, warmupSec: 0, amount: 200 };
        for (const service of LIMITED_SERVICES) {
          const r = await runScenario(
            {
              name: service,
              port: mesh.clientProxyPort,
              path: `http://${service}:8080/`,
              host: `${service}:8080`,
            },
            opts,
          );
          expect(r.requests, service).toBe(200);
          expect(r.errors + r.non2xx, service).toBe(0);
        }
      } finally {
        await mesh.stop();
      }
    } finally {
      await redis.stop();
    }
  }, 90_000);
});
