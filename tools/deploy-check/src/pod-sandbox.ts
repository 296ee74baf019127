import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import type net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/**
 * Pods without a container runtime (none runs on this machine): a "node"
 * network namespace that routes to one network namespace per pod over veth
 * pairs (addresses 10.244.0.x and the Kubernetes service address 10.96.0.1
 * exist only inside these namespaces), and containers run as kubelet would
 * run them — each in its own mount namespace with a fresh root (the host's
 * /usr for programs, the workspace at /app as the images' WORKDIR, an /etc
 * of its own with the host's Debian alternatives), its volumes at their mountPaths, the pod's uid and gid,
 * capabilities dropped (or exactly the ones an init container asks for), a
 * read-only root filesystem when the manifest says so. Probes go from the
 * node namespace to the pod's IP, as kubelet's do. Everything is named after
 * this process, so `destroy()` (and a later run, for a dead process's
 * leftovers) removes exactly what was made. Needs root.
 */

export const NODE_IP = '10.244.0.1';
/** The address pods reach the Kubernetes API at (KUBERNETES_SERVICE_HOST). */
export const KUBERNETES_SERVICE_IP = '10.96.0.1';

export interface Pod {
  name: string;
  namespace: string;
  /** The network namespace. */
  netns: string;
  ip: string;
  /** Host directory for this pod's volumes and container roots. */
  dir: string;
}

export interface Mount {
  /** Where the container sees it. */
  path: string;
  /** A host directory (a volume the test materialized). */
  source: string;
  readOnly?: boolean;
}

export interface ContainerSpec {
  name: string;
  /** argv; argv[0] is looked up on the container's PATH (the host's /usr). */
  command: string[];
  env: Record<string, string>;
  workingDir: string;
  uid: number;
  gid: number;
  /** Root with exactly these capabilities (an iptables init container); otherwise every capability is dropped. */
  capabilities?: string[];
  readOnlyRoot: boolean;
  mounts: Mount[];
  /** /etc/hosts of the pod: name → address (kubelet writes the pod's own; cluster DNS answers the rest). */
  hosts: Record<string, string>;
}

export interface RunningContainer {
  name: string;
  child: ChildProcess;
  output(): string;
  exited: Promise<number | null>;
}

export type Probe =
  | { httpGet: { path?: string; port: number | string; host?: string } }
  | { tcpSocket: { port: number | string; host?: string } }
  | { exec: { command: string[] } };

const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

function run(cmd: string, args: string[], timeoutMs = 15_000): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs });
  if (r.error) throw new Error(`${cmd} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0)
    throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

export class PodSandbox {
  readonly id: string;
  readonly node: string;
  readonly dir: string;
  private readonly namespaces: string[] = [];
  private readonly containers: RunningContainer[] = [];
  private pods = 0;

  constructor(private readonly prefix: string) {
    this.id = `${prefix}-${process.pid}`;
    this.node = `${this.id}-node`;
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}-`));
  }

  /** Fails with one sentence when this machine cannot run pods this way (not root, tools missing). */
  static requirements(): void {
    if (process.platform !== 'linux') throw new Error('needs Linux namespaces; this is not Linux');
    if (process.getuid?.() !== 0)
      throw new Error('needs root: it creates network and mount namespaces for each pod; run as root');
    const missing = ['ip', 'unshare', 'chroot', 'setpriv', 'env', 'curl', 'bash', 'iptables-save'].filter(
      (t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0,
    );
    if (missing.length)
      throw new Error(
        `needs ${missing.join(', ')} on PATH (Debian: apt-get install -y iproute2 util-linux coreutils curl iptables)`,
      );
  }

  /** Removes namespaces an earlier run left behind when its process died. */
  removeStale(): void {
    const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '';
    const pattern = new RegExp(`^${this.prefix}-(\\d+)-\\S+`);
    for (const line of list.split('\n')) {
      const m = pattern.exec(line.trim());
      if (!m || Number(m[1]) === process.pid) continue;
      let alive = true;
      try {
        process.kill(Number(m[1]), 0);
      } catch {
        alive = false;
      }
      if (!alive) spawnSync('ip', ['netns', 'del', m[0]], { timeout: 10_000 });
    }
  }

  /** The node: loopback, forwarding between pods, the Kubernetes service address. */
  start(): void {
    run('ip', ['netns', 'add', this.node]);
    this.namespaces.push(this.node);
    run('ip', ['-n', this.node, 'link', 'set', 'lo', 'up']);
    run('ip', ['netns', 'exec', this.node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    run('ip', ['-n', this.node, 'addr', 'add', `${KUBERNETES_SERVICE_IP}/32`, 'dev', 'lo']);
  }

  /** A pod network namespace with its own address, routed through the node. */
  addPod(name: string, namespace: string): Pod {
    const i = ++this.pods;
    const ip = `10.244.0.${10 + i}`;
    const netns = `${this.id}-p${i}`;
    run('ip', ['netns', 'add', netns]);
    this.namespaces.push(netns);
    const veth = `p${i}`;
    run('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    run('ip', ['-n', this.node, 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netns]);
    run('ip', ['-n', this.node, 'addr', 'add', `${NODE_IP}/32`, 'dev', veth]);
    run('ip', ['-n', this.node, 'link', 'set', veth, 'up']);
    run('ip', ['-n', this.node, 'route', 'add', `${ip}/32`, 'dev', veth]);
    run('ip', ['-n', netns, 'addr', 'add', `${ip}/32`, 'dev', 'eth0']);
    run('ip', ['-n', netns, 'link', 'set', 'eth0', 'up']);
    run('ip', ['-n', netns, 'route', 'add', `${NODE_IP}/32`, 'dev', 'eth0']);
    run('ip', ['-n', netns, 'route', 'add', 'default', 'via', NODE_IP, 'dev', 'eth0']);
    const dir = path.join(this.dir, `p${i}-${name}`);
    fs.mkdirSync(dir);
    return { name, namespace, netns, ip, dir };
  }

  /**
   * A socket listening at `host:port` inside the node namespace, handed to
   * this process (a helper creates it there and passes it over IPC): a test
   * server listening on it serves the pods as a cluster service would.
   */
  listen(host: string, port: number): Promise<net.Server> {
    const helper = `const net = require('node:net');
const s = net.createServer();
s.listen(${port}, ${JSON.stringify(host)}, () => process.send('listening', s, () => process.exit(0)));`;
    const child = spawn('ip', ['netns', 'exec', this.node, process.execPath, '-e', helper], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    return new Promise((resolve, reject) => {
      child.once('message', (_m, handle) => resolve(handle as net.Server));
      child.once('exit', (code) => reject(new Error(`the listening helper exited with ${code}`)));
    });
  }

  /** A directory for a volume of a pod (emptyDir semantics: writable by anyone). */
  volume(pod: Pod, name: string, files: Record<string, string> = {}, mode = 0o644): string {
    const dir = path.join(pod.dir, `vol-${name}`);
    fs.mkdirSync(dir, { recursive: true });
    fs.chmodSync(dir, 0o777);
    for (const [file, content] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      fs.writeFileSync(path.join(dir, file), content, { mode });
    }
    return dir;
  }

  /** Starts a container of a pod; its output is kept for assertions. */
  run(pod: Pod, spec: ContainerSpec): RunningContainer {
    const root = fs.mkdtempSync(path.join(pod.dir, `${spec.name}-root-`));
    const etc = path.join(pod.dir, `${spec.name}-etc`);
    fs.mkdirSync(etc, { recursive: true });
    const hosts = { localhost: '127.0.0.1', ...spec.hosts };
    fs.writeFileSync(
      path.join(etc, 'hosts'),
      Object.entries(hosts)
        .map(([name, ip]) => `${ip}\t${name}\n`)
        .join(''),
    );
    fs.writeFileSync(path.join(etc, 'nsswitch.conf'), 'hosts: files\n');
    fs.writeFileSync(path.join(etc, 'resolv.conf'), '');
    fs.writeFileSync(
      path.join(etc, 'passwd'),
      `root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/usr/sbin/nologin\n${spec.uid !== 0 ? `app:x:${spec.uid}:${spec.gid}:app:/tmp:/usr/sbin/nologin\n` : ''}`,
    );
    fs.writeFileSync(path.join(etc, 'group'), `root:x:0:\n${spec.gid !== 0 ? `app:x:${spec.gid}:\n` : ''}`);
    const lines = [
      'set -e',
      `R=${quote(root)}`,
      'mount -t tmpfs -o mode=0755 rootfs "$R"',
      'mkdir -p "$R/usr" "$R/dev" "$R/proc" "$R/etc" "$R/app" "$R/tmp" "$R/run"',
      'mount --rbind /usr "$R/usr" && mount -o remount,bind,ro "$R/usr"',
      'for d in bin sbin lib lib32 lib64 libx32; do',
      '  if [ -L "/$d" ]; then ln -s "$(readlink "/$d")" "$R/$d";',
      '  elif [ -d "/$d" ]; then mkdir -p "$R/$d"; mount --rbind "/$d" "$R/$d"; mount -o remount,bind,ro "$R/$d"; fi',
      'done',
      'mount --rbind /dev "$R/dev"',
      'mount -t proc proc "$R/proc"',
      `cp ${quote(etc)}/* "$R/etc/"`,
      // Debian's alternatives (iptables → iptables-nft …) are symlinks through /etc, as in the images.
      'if [ -d /etc/alternatives ]; then mkdir -p "$R/etc/alternatives"; mount --bind /etc/alternatives "$R/etc/alternatives"; mount -o remount,bind,ro "$R/etc/alternatives"; fi',
      `mount --bind ${quote(path.resolve(import.meta.dirname, '..', '..', '..'))} "$R/app" && mount -o remount,bind,ro "$R/app"`,
    ];
    for (const m of spec.mounts) {
      lines.push(`mkdir -p "$R"${quote(m.path)}`, `mount --bind ${quote(m.source)} "$R"${quote(m.path)}`);
      if (m.readOnly) lines.push(`mount -o remount,bind,ro "$R"${quote(m.path)}`);
    }
    if (spec.readOnlyRoot) lines.push('mount -o remount,ro "$R"');
    const caps = spec.capabilities
      ? `-all,${spec.capabilities.map((c) => `+${c.toLowerCase()}`).join(',')}`
      : '-all';
    const setpriv = [
      '/usr/bin/setpriv',
      `--reuid=${spec.uid}`,
      `--regid=${spec.gid}`,
      '--clear-groups',
      `--inh-caps=${caps}`,
      `--bounding-set=${caps}`,
      // allowPrivilegeEscalation: false
      '--no-new-privs',
    ];
    const env = Object.entries(spec.env).map(([k, v]) => `${k}=${v}`);
    const exec = [
      'chroot',
      root,
      ...setpriv,
      '/usr/bin/env',
      '-i',
      '-C',
      spec.workingDir,
      ...env,
      ...spec.command,
    ];
    lines.push(`exec ${exec.map(quote).join(' ')}`);
    // ip netns exec and unshare (without --fork) exec: the child's pid is the container's process.
    const child = spawn(
      'ip',
      [
        'netns',
        'exec',
        pod.netns,
        'unshare',
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        lines.join('\n'),
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const running: RunningContainer = { name: `${pod.name}/${spec.name}`, child, output: () => out, exited };
    this.containers.push(running);
    return running;
  }

  /** Runs a command in a pod's network namespace (as root, on the host's filesystem). */
  exec(pod: Pod, command: string[]): { status: number | null; stdout: string; stderr: string } {
    const r = spawnSync('ip', ['netns', 'exec', pod.netns, ...command], {
      encoding: 'utf8',
      timeout: 15_000,
    });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  }

  /** One probe as kubelet runs it: HTTP and TCP from the node to the pod's IP, exec inside the pod. */
  probe(pod: Pod, probe: Probe, ports: Record<string, number> = {}): boolean {
    const port = (p: number | string) => (typeof p === 'number' ? p : (ports[p] ?? Number(p)));
    if ('httpGet' in probe) {
      const url = `http://${probe.httpGet.host ?? pod.ip}:${port(probe.httpGet.port)}${probe.httpGet.path ?? '/'}`;
      const r = spawnSync(
        'ip',
        [
          'netns',
          'exec',
          this.node,
          'curl',
          '-s',
          '-o',
          '/dev/null',
          '-w',
          '%{http_code}',
          '--max-time',
          '3',
          url,
        ],
        { encoding: 'utf8', timeout: 10_000 },
      );
      const code = Number(r.stdout.trim());
      return code >= 200 && code < 400;
    }
    if ('tcpSocket' in probe) {
      const host = probe.tcpSocket.host ?? pod.ip;
      return (
        spawnSync(
          'ip',
          [
            'netns',
            'exec',
            this.node,
            'bash',
            '-c',
            `exec 3<>/dev/tcp/${host}/${port(probe.tcpSocket.port)}`,
          ],
          { timeout: 10_000 },
        ).status === 0
      );
    }
    return this.exec(pod, probe.exec.command).status === 0;
  }

  /** The body of an HTTP GET from the node namespace (curl), or '' when it fails. */
  fetchFromNode(url: string): string {
    const r = spawnSync('ip', ['netns', 'exec', this.node, 'curl', '-sf', '--max-time', '5', url], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    return r.status === 0 ? r.stdout : '';
  }

  /** Stops every container still running (SIGTERM, then SIGKILL), removes the namespaces and files. */
  async destroy(): Promise<void> {
    for (const c of this.containers) {
      if (c.child.exitCode !== null || c.child.signalCode !== null) continue;
      c.child.kill('SIGTERM');
      const timer = setTimeout(() => c.child.kill('SIGKILL'), 10_000);
      await c.exited;
      clearTimeout(timer);
    }
    for (const ns of this.namespaces.reverse()) spawnSync('ip', ['netns', 'del', ns], { timeout: 10_000 });
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** Namespaces of this process still present (for a test to assert it cleaned up). */
  remaining(): string[] {
    const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '';
    return list
      .split('\n')
      .map((l) => l.trim().split(' ')[0] ?? '')
      .filter((n) => n.startsWith(`${this.id}-`));
  }
}
