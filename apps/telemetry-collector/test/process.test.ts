import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@mizzen/runtime';
import { afterAll, describe, expect, it } from 'vitest';
import { parseDuration, parseFlags } from '../src/flags.js';
import { eventually, getJson } from './helpers/collector.js';

/** The telemetry-collector process as `mizzen up` starts it: flags, ports, dashboard, clean stop. */
const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'main.js');

function run(args: string[], env: NodeJS.ProcessEnv = {}) {
  return spawnSync(process.execPath, [main, ...args], {
    encoding: 'utf8',
    timeout: 10_000,
    env: { ...process.env, REDIS_URL: '', ...env },
  });
}

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

describe('telemetry-collector process', () => {
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  });

  it('rejects bad flags with one line naming the flag, exit code 2', () => {
    const cases: [string[], RegExp, NodeJS.ProcessEnv?][] = [
      [['--http-port', 'abc'], /--http-port must be a port number/],
      [['--otlp-grpc-port', '70000'], /--otlp-grpc-port must be a port number/],
      [['--scrape-interval', 'often'], /--scrape-interval must be a duration like 500ms, 15s, 5m or 1h/],
      [
        ['--scrape-interval', '10s', '--scrape-timeout', '20s'],
        /--scrape-timeout \(20s\) must not exceed --scrape-interval \(10s\)/,
      ],
      [['--retention', '10s'], /--retention must be at least 1m/],
      [['--pilot', 'localhost:15014'], /--pilot must (be a URL|use http)/],
      [['--redis', 'http://x'], /--redis must use redis: or rediss:/],
      [[], /REDIS_URL must use redis: or rediss:/, { REDIS_URL: 'nope://x' }],
      [['--scrape-target', 'reviews'], /--scrape-target must be NAME=URL/],
      [['--max-spans', '0'], /--max-spans must be a whole number of at least 1/],
      [['--http-port', '4318'], /--http-port and --otlp-http-port are both 4318/],
      [['--log-level', 'loud'], /--log-level must be one of/],
      [['--bogus'], /Unknown option '--bogus'/],
    ];
    for (const [args, message, env] of cases) {
      const r = run(args, env);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr.split('\n')[0]).toMatch(message);
      expect(r.stderr).toMatch(/^telemetry-collector: [^\n]+ \(see --help\)\n$/);
    }
    expect(run(['--help']).stdout).toMatch(/--otlp-grpc-port 4317/);
  });

  it('parses durations and defaults', () => {
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('5')).toBeUndefined();
    const flags = parseFlags([], {});
    expect(flags).toMatchObject({
      host: '0.0.0.0',
      httpPort: 20001,
      otlpHttpPort: 4318,
      otlpGrpcPort: 4317,
      pilotUrl: 'http://127.0.0.1:15014',
      scrapeIntervalMs: 15_000,
      scrapeTimeoutMs: 5000,
      retentionMs: 3_600_000,
      redisUrl: undefined,
    });
    expect(parseFlags(['--pilot', 'none'], { REDIS_URL: 'redis://127.0.0.1:6379' })).toMatchObject({
      pilotUrl: undefined,
      redisUrl: 'redis://127.0.0.1:6379',
    });
  });

  it('serves health, metrics, the API and the dashboard, and stops cleanly on SIGTERM', async () => {
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
        'none',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, REDIS_URL: '' } },
    );
    children.push(child);
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    await eventually(
      () => (out.includes('telemetry collector ready') ? true : undefined),
      10_000,
      'ready log line',
    );
    const ready = JSON.parse(out.split('\n').find((l) => l.includes('telemetry collector ready'))!) as Record<
      string,
      unknown
    >;
    expect(ready).toMatchObject({
      component: 'telemetry-collector',
      httpPort: http,
      otlpHttpPort: otlpHttp,
      otlpGrpcPort: otlpGrpc,
      storage: 'memory',
    });

    expect(await getJson(`http://127.0.0.1:${http}/healthz`)).toMatchObject({
      status: 'ok',
      storage: { backend: 'memory' },
    });
    const page = await fetch(`http://127.0.0.1:${http}/`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toMatch(/<title>Mizzen/);
    const script = /src="(\/assets\/[^"]+\.js)"/.exec(html)?.[1];
    expect(script).toBeDefined();
    const asset = await fetch(`http://127.0.0.1:${http}${script}`);
    expect(asset.status).toBe(200);
    expect(asset.headers.get('cache-control')).toMatch(/immutable/);
    // Read every response whole: one left unread holds its connection busy, and a server drains busy connections.
    expect((await asset.arrayBuffer()).byteLength).toBeGreaterThan(0);
    expect(await (await fetch(`http://127.0.0.1:${http}/metrics`)).text()).toMatch(
      /mizzen_collector_process_cpu_seconds_total/,
    );
    const otlp = await fetch(`http://127.0.0.1:${otlpHttp}/v1/traces`, {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json' },
    });
    expect(otlp.status).toBe(200);
    await otlp.arrayBuffer();

    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);
    expect(out).toMatch(/"reason":"SIGTERM"/);
    // Stopped by its own shutdown, not by the grace timer that ends a shutdown that hangs.
    expect(out).not.toMatch(/shutdown hooks did not finish in time/);
  });

  it('exits when its parent (MIZZEN_PARENT_PID) dies, and reports a taken port in one line', async () => {
    const parent = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    children.push(parent);
    const http = await freePort();
    const child = spawn(
      process.execPath,
      [
        main,
        '--host',
        '127.0.0.1',
        '--http-port',
        String(http),
        '--otlp-http-port',
        '0',
        '--otlp-grpc-port',
        '0',
        '--pilot',
        'none',
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, REDIS_URL: '', MIZZEN_PARENT_PID: String(parent.pid) },
      },
    );
    children.push(child);
    await eventually(
      async () => ((await fetch(`http://127.0.0.1:${http}/healthz`)).ok ? true : undefined),
      10_000,
      'collector up',
    );

    const clash = run([
      '--host',
      '127.0.0.1',
      '--http-port',
      String(http),
      '--otlp-http-port',
      '0',
      '--otlp-grpc-port',
      '0',
      '--pilot',
      'none',
    ]);
    expect(clash.status).toBe(1);
    expect(clash.stderr.trim().split('\n')).toHaveLength(1);
    expect(clash.stderr).toMatch(/port already in use/);

    parent.kill('SIGKILL');
    expect(await exited(child)).toBe(0);
  });
});
