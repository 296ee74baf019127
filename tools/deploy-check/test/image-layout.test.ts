import { execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkDockerfile, imageTable, REPO_ROOT } from '../src/index.js';

/**
 * Each image's runtime, rebuilt here without Docker (no engine runs on this
 * machine): the same tools/images/stage-runtime.sh the Dockerfiles run, then
 * the same `npm ci --omit=dev --workspace=<app>` in a directory outside the
 * repository (so nothing resolves from the workspace's own node_modules), then
 * the Dockerfile's ENTRYPOINT started with local ports until it says it is
 * ready, and stopped with SIGTERM. Images are checked two at a time, each in
 * its own copy of the staged tree (the installs are most of the time).
 * A runtime file the build forgot (protos,
 * static assets, a native addon) or a dependency declared for development only
 * fails here as it would in the image.
 */

interface App {
  image: string;
  args: (ports: number[]) => string[];
  env?: Record<string, string>;
  /** What a server prints once it is ready (it is then stopped with SIGTERM). */
  ready?: RegExp;
  /** A command that runs to completion instead: it exits 0 and prints this. */
  prints?: RegExp;
  /** Written into the staged directory before the app starts (relative path → content). */
  files?: Record<string, string>;
  /** More to check while it runs, given its output, pid and the staged directory. */
  check?: (output: string, pid: number, dir: string) => void;
}

const APPS: App[] = [
  {
    image: 'pilot',
    args: () => ['--host', '127.0.0.1', '--xds-port', '0', '--http-port', '0', '--store', 'state/store.json'],
    ready: /"msg":"pilot ready"/,
  },
  {
    image: 'citadel',
    args: () => ['--host', '127.0.0.1', '--grpc-port', '0', '--http-port', '0', '--ca-dir', 'state/ca'],
    ready: /"msg":"citadel ready"/,
  },
  {
    image: 'sidecar-agent',
    // As injected: iptables capture, which needs the native addon (SO_ORIGINAL_DST) from the staged build.
    args: ([a, h, s, o]) => [
      '--pilot',
      '127.0.0.1:9',
      '--workload',
      'layout-test',
      '--ip',
      '127.0.0.1',
      '--capture-mode',
      'iptables',
      '--outbound-port',
      String(o),
      '--admin-port',
      String(a),
      '--health-port',
      String(h),
      '--stats-port',
      String(s),
    ],
    ready: /"msg":"sidecar-agent started"/,
    check: (output, pid, dir) => {
      const addon = path.join(dir, 'libs', 'original-dst', 'dist', 'original_dst.node');
      const loaded = /"addon":"([^"]+)","msg":"original destination addon loaded"/.exec(output)?.[1];
      expect(loaded).toBe(addon);
      // Loaded into the process, from the staged runtime (not the workspace's build).
      expect(fs.readFileSync(`/proc/${pid}/maps`, 'utf8')).toContain(addon);
    },
  },
  {
    image: 'ingress-gateway',
    args: ([a, h, p]) => [
      '--pilot',
      '127.0.0.1:9',
      '--ip',
      '127.0.0.1',
      '--port-map',
      `80=${p}`,
      '--admin-port',
      String(a),
      '--health-port',
      String(h),
    ],
    ready: /"msg":"ingress-gateway started"/,
  },
  {
    image: 'egress-gateway',
    args: ([a, h, p]) => [
      '--pilot',
      '127.0.0.1:9',
      '--ip',
      '127.0.0.1',
      '--port-map',
      `80=${p}`,
      '--admin-port',
      String(a),
      '--health-port',
      String(h),
    ],
    ready: /"msg":"egress-gateway started"/,
  },
  {
    image: 'telemetry-collector',
    args: () => [
      '--host',
      '127.0.0.1',
      '--http-port',
      '0',
      '--otlp-http-port',
      '0',
      '--otlp-grpc-port',
      '0',
      '--pilot',
      'none',
    ],
    ready: /"msg":"telemetry collector ready"/,
  },
  {
    image: 'cli',
    args: () => ['kube-inject', '-f', 'state/deployment.yaml'],
    files: {
      'state/deployment.yaml': `apiVersion: apps/v1
kind: Deployment
metadata: { name: web, namespace: shop }
spec:
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec: { containers: [{ name: web, image: web:1 }] }
`,
    },
    prints: /name: istio-proxy[\s\S]*name: mizzen-init|name: mizzen-init[\s\S]*name: istio-proxy/,
  },
  ...['productpage', 'details', 'reviews', 'ratings'].map((app) => ({
    image: `bookinfo-${app}`,
    args: () => [],
    env: { PORT: '0', HOST: '127.0.0.1', SERVICE_VERSION: 'v1' },
    ready: /Server listening at http/,
  })),
];

const execFileAsync = promisify(execFile);

async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, async () => {
      const s = net.createServer();
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
      return s;
    }),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

describe('each image runtime rebuilt without Docker (no engine here): staged build output + production dependencies only', () => {
  const table = imageTable();
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-image-'));
  const staged = path.join(root, 'staged');

  beforeAll(() => {
    execFileSync(path.join(REPO_ROOT, 'tools', 'images', 'stage-runtime.sh'), [staged], { stdio: 'pipe' });
  }, 60_000);

  afterAll(() => {
    fs.rmSync(root, { recursive: true, force: true });
  }, 60_000);

  it('stages manifests and build output, never sources or dependencies', () => {
    expect(fs.existsSync(path.join(staged, 'package-lock.json'))).toBe(true);
    expect(fs.existsSync(path.join(staged, 'apps', 'pilot', 'dist', 'main.js'))).toBe(true);
    expect(fs.existsSync(path.join(staged, 'libs', 'xds', 'protos'))).toBe(true);
    expect(fs.existsSync(path.join(staged, 'apps', 'bookinfo', 'productpage', 'static'))).toBe(true);
    expect(fs.existsSync(path.join(staged, 'apps', 'pilot', 'src'))).toBe(false);
    expect(fs.existsSync(path.join(staged, 'apps', 'pilot', 'node_modules'))).toBe(false);
    expect(fs.existsSync(path.join(staged, 'node_modules'))).toBe(false);
  });

  it('starts every image tools/images/build.sh builds', () => {
    expect(APPS.map((a) => a.image).sort()).toEqual([...table.keys()].sort());
  });

  // Two at a time (the suite's maxConcurrency): each install is mostly waiting on the disk and npm's cache.
  describe.concurrent('per image', () => {
    for (const app of APPS) {
      it(`${app.image}: starts from its staged build with its production dependencies alone`, async ({
        expect,
      }) => {
        const dockerfile = table.get(app.image)!;
        const text = fs.readFileSync(path.join(REPO_ROOT, dockerfile), 'utf8');
        const pkg = JSON.parse(
          fs.readFileSync(path.join(REPO_ROOT, path.dirname(dockerfile), 'package.json'), 'utf8'),
        ) as {
          name: string;
        };
        // The exact install the Dockerfile runs.
        const install = ['ci', '--omit=dev', `--workspace=${pkg.name}`, '--no-audit', '--no-fund'];
        expect(text).toContain(`RUN npm ${install.join(' ')}`);
        expect(text).toContain('RUN tools/images/stage-runtime.sh /out');
        // The image's own copy of the staged tree, as its Dockerfile's build stage has.
        const dir = path.join(root, app.image);
        fs.cpSync(staged, dir, { recursive: true });
        fs.mkdirSync(path.join(dir, 'state'), { recursive: true });
        await execFileAsync('npm', [...install, '--prefer-offline', '--loglevel=error'], { cwd: dir });
        expect(fs.existsSync(path.join(dir, 'node_modules', 'vitest'))).toBe(false);

        for (const [file, content] of Object.entries(app.files ?? {}))
          fs.writeFileSync(path.join(dir, file), content);

        const entry = checkDockerfile(dockerfile).entrypoint!;
        const child = spawn(process.execPath, [entry, ...app.args(await freePorts(4))], {
          cwd: dir,
          env: { PATH: process.env.PATH ?? '', HOME: dir, NODE_ENV: 'production', ...app.env },
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        let output = '';
        child.stdout.on('data', (d: Buffer) => {
          output += d.toString();
        });
        child.stderr.on('data', (d: Buffer) => {
          output += d.toString();
        });
        const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
        if (app.prints) {
          const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
          const code = await exited;
          clearTimeout(timer);
          expect(code, `${app.image} exit code:\n${output}`).toBe(0);
          expect(output).toMatch(app.prints);
          return;
        }
        const ready = app.ready!;
        try {
          const deadline = Date.now() + 20_000;
          while (!ready.test(output) && child.exitCode === null && Date.now() < deadline) {
            await new Promise((r) => setTimeout(r, 50));
          }
          expect(output, `${app.image} did not get ready`).toMatch(ready);
          expect(output).not.toMatch(/"level":"(fatal|error)"/);
          app.check?.(output, child.pid!, dir);
        } finally {
          if (child.exitCode === null) child.kill('SIGTERM');
        }
        expect(await exited, `${app.image} exit code after SIGTERM:\n${output}`).toBe(0);
        fs.rmSync(dir, { recursive: true, force: true });
      }, 240_000);
    }
  });
});
