import { type ChildProcess, spawn, spawnSync } from 'node:child_process';

function bareEnv(): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/tmp' };
}

/**
 * Test hosts made of Linux network namespaces joined by veth pairs, for
 * tests that need real routing and real iptables. Everything is named after
 * this process (`<prefix>-<pid>-<name>`), so `destroy()` — and a later run,
 * for namespaces whose process is gone — removes exactly what was made here.
 * Deleting a namespace takes its veth ends, addresses and iptables rules
 * with it.
 */
export class NetworkLab {
  private readonly namespaces: string[] = [];
  private readonly children: { name: string; child: ChildProcess; output: () => string }[] = [];
  readonly id: string;

  constructor(private readonly prefix: string) {
    this.id = `${prefix}-${process.pid}`;
  }

  /** Fails with one sentence when this machine cannot run the lab (not root, tools missing). */
  static requirements(tools: string[]): void {
    if (process.platform !== 'linux') throw new Error('needs Linux network namespaces; this is not Linux');
    if (process.getuid?.() !== 0)
      throw new Error(
        'needs root: it creates network namespaces, veth pairs and iptables rules; run as root',
      );
    const missing = tools.filter((t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0);
    if (missing.length) {
      throw new Error(
        `needs ${missing.join(', ')} on PATH (Debian: apt-get install -y iptables iproute2 curl util-linux)`,
      );
    }
  }

  /** Removes namespaces an earlier run of this lab left behind when its process died. */
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

  /**
   * Runs a command (in a namespace when `ns` is given) with a bare environment
   * (no proxy variables: clients here are unmodified); throws with its stderr
   * when it fails.
   */
  run(ns: string | undefined, cmd: string, args: string[], timeoutMs = 15_000): string {
    const [file, argv] = ns ? ['ip', ['netns', 'exec', ns, cmd, ...args]] : [cmd, args];
    const r = spawnSync(file, argv, { encoding: 'utf8', timeout: timeoutMs, env: bareEnv() });
    if (r.error) throw new Error(`${cmd} ${args.join(' ')}${ns ? ` (in ${ns})` : ''}: ${r.error.message}`);
    if (r.status !== 0) {
      throw new Error(
        `${cmd} ${args.join(' ')}${ns ? ` (in ${ns})` : ''} exited ${r.status}: ${(r.stderr || r.stdout).trim()}`,
      );
    }
    return r.stdout;
  }

  /** A new namespace with loopback up; returns its full name. */
  namespace(name: string): string {
    const full = `${this.id}-${name}`;
    this.run(undefined, 'ip', ['netns', 'add', full]);
    this.namespaces.push(full);
    this.run(full, 'ip', ['link', 'set', 'lo', 'up']);
    return full;
  }

  /** A veth pair between two namespaces, each end with an address (CIDR form, e.g. 10.253.0.1/24). */
  link(a: { ns: string; dev: string; cidr: string }, b: { ns: string; dev: string; cidr: string }): void {
    this.run(a.ns, 'ip', ['link', 'add', a.dev, 'type', 'veth', 'peer', 'name', b.dev, 'netns', b.ns]);
    for (const end of [a, b]) {
      this.run(end.ns, 'ip', ['addr', 'add', end.cidr, 'dev', end.dev]);
      this.run(end.ns, 'ip', ['link', 'set', end.dev, 'up']);
    }
  }

  /** Starts a long-running process in a namespace, as `uid` when given; output is kept for diagnostics. */
  start(ns: string, name: string, cmd: string, args: string[], opts: { uid?: number } = {}): ChildProcess {
    const argv =
      opts.uid === undefined
        ? [cmd, ...args]
        : ['setpriv', `--reuid=${opts.uid}`, `--regid=${opts.uid}`, '--clear-groups', cmd, ...args];
    // `ip netns exec` execs the command, so the child's pid is the process itself.
    const child = spawn('ip', ['netns', 'exec', ns, ...argv], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...bareEnv(), MIZZEN_LOG_LEVEL: 'info' },
    });
    let out = '';
    const keep = (c: Buffer) => {
      out += c.toString();
      if (out.length > 200_000) out = out.slice(-100_000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.children.push({ name, child, output: () => out });
    return child;
  }

  /** The last lines each started process printed: what a failing test shows. */
  outputs(lines = 15): string {
    return this.children
      .map(
        (c) =>
          `--- ${c.name} (exit ${c.child.exitCode ?? c.child.signalCode ?? 'running'})\n${c.output().split('\n').slice(-lines).join('\n')}`,
      )
      .join('\n');
  }

  /** Stops every process (TERM, then KILL after 3 s) and deletes every namespace this lab made. */
  async destroy(): Promise<void> {
    await Promise.all(
      this.children.splice(0).map(
        ({ child }) =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve();
            const kill = setTimeout(() => child.kill('SIGKILL'), 3_000);
            child.once('exit', () => {
              clearTimeout(kill);
              resolve();
            });
            child.kill('SIGTERM');
          }),
      ),
    );
    for (const ns of this.namespaces.splice(0)) spawnSync('ip', ['netns', 'del', ns], { timeout: 10_000 });
  }

  /** Namespaces of this lab that still exist (after destroy(): none). */
  remaining(): string[] {
    const list = spawnSync('ip', ['netns', 'list'], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '';
    return list
      .split('\n')
      .map((l) => l.trim().split(/\s+/)[0] ?? '')
      .filter((n) => n.startsWith(`${this.id}-`));
  }
}
