import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * `sidecar-agent iptables` for real, in a network namespace this test creates
 * (and deletes): the nat table it leaves is Istio's documented rule set, a
 * second run changes nothing, and --cleanup leaves the table as it found it.
 */
const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'main.js');
const ns = `mzipt-${process.pid}`;

function inNs(cmd: string, args: string[]) {
  return spawnSync('ip', ['netns', 'exec', ns, cmd, ...args], { encoding: 'utf8', timeout: 20_000 });
}

function agent(args: string[]) {
  const r = inNs(process.execPath, [main, 'iptables', ...args]);
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The nat table's ISTIO_ rules and the jumps into them, as `iptables -S` lists them. */
function natRules(): string[] {
  const r = inNs('iptables', ['-t', 'nat', '-S']);
  if (r.status !== 0) throw new Error(`iptables -S failed: ${r.stderr}`);
  return r.stdout.trim().split('\n').filter(Boolean);
}

/** Istio's documented `iptables -t nat -S` for an injected pod (istio-init's flags), in iptables' own spelling. */
const ISTIO_DOCUMENTED = [
  '-P PREROUTING ACCEPT',
  '-P INPUT ACCEPT',
  '-P OUTPUT ACCEPT',
  '-P POSTROUTING ACCEPT',
  '-N ISTIO_INBOUND',
  '-N ISTIO_IN_REDIRECT',
  '-N ISTIO_OUTPUT',
  '-N ISTIO_REDIRECT',
  '-A PREROUTING -p tcp -j ISTIO_INBOUND',
  '-A OUTPUT -p tcp -j ISTIO_OUTPUT',
  '-A ISTIO_INBOUND -p tcp -m tcp --dport 15008 -j RETURN',
  '-A ISTIO_INBOUND -p tcp -m tcp --dport 15090 -j RETURN',
  '-A ISTIO_INBOUND -p tcp -m tcp --dport 15021 -j RETURN',
  '-A ISTIO_INBOUND -p tcp -m tcp --dport 15020 -j RETURN',
  '-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT',
  '-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006',
  '-A ISTIO_OUTPUT -s 127.0.0.6/32 -o lo -j RETURN',
  '-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT',
  '-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN',
  '-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN',
  '-A ISTIO_OUTPUT ! -d 127.0.0.1/32 -o lo -p tcp -m tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT',
  '-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN',
  '-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN',
  '-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN',
  '-A ISTIO_OUTPUT -j ISTIO_REDIRECT',
  '-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001',
];

const INJECTOR_FLAGS = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', ''];
const INBOUND_FLAGS = ['-b', '*', '-d', '15090,15021,15020'];

describe('sidecar-agent iptables (needs root: creates a network namespace and writes its nat table)', () => {
  let created = false;

  beforeAll(() => {
    if (process.getuid?.() !== 0)
      throw new Error('this test needs root: it creates a network namespace and installs iptables rules');
    if (spawnSync('sh', ['-c', 'command -v iptables-restore && command -v ip']).status !== 0)
      throw new Error('this test needs iptables and iproute2 (apt-get install -y iptables iproute2)');
    if (!fs.existsSync(main)) throw new Error(`build sidecar-agent first: ${main} is missing`);
    const add = spawnSync('ip', ['netns', 'add', ns], { encoding: 'utf8', timeout: 10_000 });
    if (add.status !== 0) throw new Error(`ip netns add ${ns} failed: ${add.stderr}`);
    created = true;
  });

  afterAll(() => {
    if (created) spawnSync('ip', ['netns', 'del', ns], { timeout: 10_000 });
  });

  it('--dry-run prints the rules and changes nothing', () => {
    const before = natRules();
    const r = agent([...INJECTOR_FLAGS, ...INBOUND_FLAGS, '--dry-run']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('iptables -t nat -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001');
    expect(natRules()).toEqual(before);
  });

  it("installs Istio's documented rule set; running it again changes nothing", () => {
    const first = agent([...INJECTOR_FLAGS, ...INBOUND_FLAGS]);
    expect(first.status, first.stderr).toBe(0);
    expect(natRules()).toEqual(ISTIO_DOCUMENTED);
    const again = agent([...INJECTOR_FLAGS, ...INBOUND_FLAGS]);
    expect(again.status, again.stderr).toBe(0);
    expect(natRules()).toEqual(ISTIO_DOCUMENTED);
  });

  it('re-running with other flags replaces the rules instead of adding to them', () => {
    const r = agent([...INJECTOR_FLAGS, '-b', '9080', '-o', '6379', '-c', 'veth9']);
    expect(r.status, r.stderr).toBe(0);
    const rules = natRules();
    expect(rules.filter((l) => l.startsWith('-A PREROUTING -p tcp -j ISTIO_INBOUND'))).toHaveLength(1);
    expect(rules).toContain('-A ISTIO_INBOUND -p tcp -m tcp --dport 9080 -j ISTIO_IN_REDIRECT');
    expect(rules).toContain('-A ISTIO_OUTPUT -p tcp -m tcp --dport 6379 -j RETURN');
    expect(rules).toContain('-A PREROUTING -i veth9 -j RETURN');
    expect(rules.some((l) => l.includes('--dport 15090'))).toBe(false);
  });

  it('--cleanup removes every rule and chain it made, and succeeds when there is nothing left', () => {
    const r = agent([...INJECTOR_FLAGS, '-c', 'veth9', '--cleanup']);
    expect(r.status, r.stderr).toBe(0);
    expect(natRules()).toEqual(ISTIO_DOCUMENTED.slice(0, 4));
    const again = agent(['--cleanup']);
    expect(again.status, again.stderr).toBe(0);
  });

  it('says what is wrong with a bad flag, exit code 2, no stack trace', () => {
    const r = agent(['-m', 'TPROXY']);
    expect(r.status).toBe(2);
    expect(r.stderr.split('\n')[0]).toMatch(/^sidecar-agent iptables: .*TPROXY is not supported/);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});
