import { describe, expect, it } from 'vitest';
import { IptablesFlagError, parseIptablesFlags } from '../src/iptables/command.js';
import {
  buildAll,
  buildRules,
  cleanupScript,
  parseSave,
  renderCommands,
  restoreScript,
} from '../src/iptables/rules.js';

/** The rules as istio-iptables' golden files list them (`iptables -t nat -A ...`). */
function rules(flags: string[]): string[] {
  return buildAll(parseIptablesFlags(flags).config).flatMap(renderCommands);
}

const HEAD = [
  'iptables -t nat -N ISTIO_INBOUND',
  'iptables -t nat -N ISTIO_REDIRECT',
  'iptables -t nat -N ISTIO_IN_REDIRECT',
  'iptables -t nat -N ISTIO_OUTPUT',
  'iptables -t nat -A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN',
  'iptables -t nat -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001',
  'iptables -t nat -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006',
];

/** The proxy's uid/gid and loopback handling, identical in every case below unless noted. */
const OWNER = [
  'iptables -t nat -A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN',
  'iptables -t nat -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT',
  'iptables -t nat -A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN',
  'iptables -t nat -A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN',
  'iptables -t nat -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT',
  'iptables -t nat -A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN',
  'iptables -t nat -A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN',
  'iptables -t nat -A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN',
];

const INJECTED = ['-p', '15001', '-z', '15006', '-u', '1337', '-m', 'REDIRECT', '-i', '*', '-x', ''];

describe('istio-iptables rule generation (table)', () => {
  const cases: { name: string; flags: string[]; expected: string[] }[] = [
    {
      name: "the injector's default: capture everything, the proxy's own ports excluded inbound",
      flags: [...INJECTED, '-b', '*', '-d', '15090,15021,15020'],
      expected: [
        ...HEAD,
        'iptables -t nat -A PREROUTING -p tcp -j ISTIO_INBOUND',
        'iptables -t nat -A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN',
        'iptables -t nat -A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN',
        'iptables -t nat -A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN',
        'iptables -t nat -A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT',
        'iptables -t nat -A OUTPUT -p tcp -j ISTIO_OUTPUT',
        ...OWNER,
        'iptables -t nat -A ISTIO_OUTPUT -j ISTIO_REDIRECT',
      ],
    },
    {
      name: 'no inbound ports: no PREROUTING jump; no include ranges: nothing redirected outbound (empty.golden)',
      flags: [],
      expected: [...HEAD, 'iptables -t nat -A OUTPUT -p tcp -j ISTIO_OUTPUT', ...OWNER],
    },
    {
      name: 'listed inbound ports only (traffic.sidecar.istio.io/includeInboundPorts)',
      flags: [...INJECTED, '-b', '9080,9090'],
      expected: [
        ...HEAD,
        'iptables -t nat -A PREROUTING -p tcp -j ISTIO_INBOUND',
        'iptables -t nat -A ISTIO_INBOUND -p tcp --dport 9080 -j ISTIO_IN_REDIRECT',
        'iptables -t nat -A ISTIO_INBOUND -p tcp --dport 9090 -j ISTIO_IN_REDIRECT',
        'iptables -t nat -A OUTPUT -p tcp -j ISTIO_OUTPUT',
        ...OWNER,
        'iptables -t nat -A ISTIO_OUTPUT -j ISTIO_REDIRECT',
      ],
    },
    {
      name: 'includeOutboundIPRanges: only those destinations (ipnets.golden); IPv6 ranges go to ip6tables only',
      flags: ['-i', '10.0.0.0/8,fd00::/8'],
      expected: [
        ...HEAD,
        'iptables -t nat -A OUTPUT -p tcp -j ISTIO_OUTPUT',
        ...OWNER,
        'iptables -t nat -A ISTIO_OUTPUT -d 10.0.0.0/8 -j ISTIO_REDIRECT',
      ],
    },
    {
      name: 'excludeOutboundIPRanges and include ranges (ip-range.golden order: exclusions first)',
      flags: ['-i', '9.9.0.0/16', '-x', '1.1.0.0/16,169.254.169.254'],
      expected: [
        ...HEAD,
        'iptables -t nat -A OUTPUT -p tcp -j ISTIO_OUTPUT',
        ...OWNER,
        'iptables -t nat -A ISTIO_OUTPUT -d 1.1.0.0/16 -j RETURN',
        'iptables -t nat -A ISTIO_OUTPUT -d 169.254.169.254/32 -j RETURN',
        'iptables -t nat -A ISTIO_OUTPUT -d 9.9.0.0/16 -j ISTIO_REDIRECT',
      ],
    },
    {
      name: 'excludeOutboundPorts: returned before anything else in ISTIO_OUTPUT',
      flags: ['-i', '*', '-o', '22,6379'],
      expected: [
        ...HEAD,
        'iptables -t nat -A OUTPUT -p tcp -j ISTIO_OUTPUT',
        'iptables -t nat -A ISTIO_OUTPUT -p tcp --dport 22 -j RETURN',
        'iptables -t nat -A ISTIO_OUTPUT -p tcp --dport 6379 -j RETURN',
        ...OWNER,
        'iptables -t nat -A ISTIO_OUTPUT -j ISTIO_REDIRECT',
      ],
    },
    {
      name: 'includeOutboundPorts: captured whatever the destination (outbound-ports-include.golden)',
      flags: ['-q', '32000,31000'],
      expected: [
        ...HEAD,
        'iptables -t nat -A OUTPUT -p tcp -j ISTIO_OUTPUT',
        ...OWNER,
        'iptables -t nat -A ISTIO_OUTPUT -p tcp --dport 32000 -j ISTIO_REDIRECT',
        'iptables -t nat -A ISTIO_OUTPUT -p tcp --dport 31000 -j ISTIO_REDIRECT',
      ],
    },
    {
      name: 'loopback in the include ranges: apps calling themselves over lo are captured (loopback-outbound-iprange.golden)',
      flags: ['-i', '127.1.2.3/32'],
      expected: [
        ...HEAD,
        'iptables -t nat -A OUTPUT -p tcp -j ISTIO_OUTPUT',
        ...OWNER.filter((r) => !r.includes('! --uid-owner') && !r.includes('! --gid-owner')),
        'iptables -t nat -A ISTIO_OUTPUT -d 127.1.2.3/32 -j ISTIO_REDIRECT',
      ],
    },
    {
      name: 'several proxy uids and gids, other ports (-p/-z/-e)',
      flags: ['-p', '16001', '-z', '16006', '-e', '16008', '-u', '3,4', '-g', '1'],
      expected: [
        'iptables -t nat -N ISTIO_INBOUND',
        'iptables -t nat -N ISTIO_REDIRECT',
        'iptables -t nat -N ISTIO_IN_REDIRECT',
        'iptables -t nat -N ISTIO_OUTPUT',
        'iptables -t nat -A ISTIO_INBOUND -p tcp --dport 16008 -j RETURN',
        'iptables -t nat -A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 16001',
        'iptables -t nat -A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 16006',
        'iptables -t nat -A OUTPUT -p tcp -j ISTIO_OUTPUT',
        'iptables -t nat -A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN',
        ...[
          ['uid', '3'],
          ['uid', '4'],
          ['gid', '1'],
        ].flatMap(([k, id]) => [
          `iptables -t nat -A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 16008 -m owner --${k}-owner ${id} -j ISTIO_IN_REDIRECT`,
          `iptables -t nat -A ISTIO_OUTPUT -o lo -m owner ! --${k}-owner ${id} -j RETURN`,
          `iptables -t nat -A ISTIO_OUTPUT -m owner --${k}-owner ${id} -j RETURN`,
        ]),
        'iptables -t nat -A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN',
      ],
    },
    {
      name: 'excluded interfaces return first in PREROUTING and OUTPUT (basic-exclude-nic.golden)',
      flags: ['-c', 'not-for-istio', '-b', '*', '-i', '*'],
      expected: [
        'iptables -t nat -N ISTIO_INBOUND',
        'iptables -t nat -N ISTIO_REDIRECT',
        'iptables -t nat -N ISTIO_IN_REDIRECT',
        'iptables -t nat -N ISTIO_OUTPUT',
        'iptables -t nat -A PREROUTING -i not-for-istio -j RETURN',
        'iptables -t nat -A OUTPUT -o not-for-istio -j RETURN',
        ...HEAD.slice(4),
        'iptables -t nat -A PREROUTING -p tcp -j ISTIO_INBOUND',
        'iptables -t nat -A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT',
        'iptables -t nat -A OUTPUT -p tcp -j ISTIO_OUTPUT',
        ...OWNER,
        'iptables -t nat -A ISTIO_OUTPUT -j ISTIO_REDIRECT',
      ],
    },
  ];

  for (const c of cases) {
    it(c.name, () => {
      expect(rules(c.flags)).toEqual(c.expected);
    });
  }

  it('writes the same rules for ip6tables with ::1, ::6 and the IPv6 ranges when --ipv6 is given', () => {
    const v6 = renderCommands(
      buildRules(
        parseIptablesFlags(['--ipv6', '-b', '*', '-i', '10.0.0.0/8,fd00::/8', '-x', 'fd00:1::/64']).config,
        6,
      ),
    );
    expect(v6).toContain('ip6tables -t nat -A ISTIO_OUTPUT -o lo -s ::6/128 -j RETURN');
    expect(v6).toContain(
      'ip6tables -t nat -A ISTIO_OUTPUT -o lo ! -d ::1/128 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT',
    );
    expect(v6.slice(-3)).toEqual([
      'ip6tables -t nat -A ISTIO_OUTPUT -d ::1/128 -j RETURN',
      'ip6tables -t nat -A ISTIO_OUTPUT -d fd00:1::/64 -j RETURN',
      'ip6tables -t nat -A ISTIO_OUTPUT -d fd00::/8 -j ISTIO_REDIRECT',
    ]);
    expect(rules(['--ipv6']).filter((l) => l.startsWith('ip6tables')).length).toBeGreaterThan(0);
    expect(rules([]).some((l) => l.startsWith('ip6tables'))).toBe(false);
  });
});

describe('istio-iptables flags', () => {
  it('takes long names as well as short ones', () => {
    const a = parseIptablesFlags(['-p', '15001', '-b', '*', '-d', '15090', '-o', '22', '-n']);
    const b = parseIptablesFlags([
      '--envoy-port',
      '15001',
      '--istio-inbound-ports',
      '*',
      '--istio-local-exclude-ports',
      '15090',
      '--istio-local-outbound-ports-exclude',
      '22',
      '--dry-run',
    ]);
    expect(a).toEqual(b);
    expect(a.dryRun).toBe(true);
  });

  it('rejects bad values with a sentence naming the flag', () => {
    const cases: [string[], RegExp][] = [
      [['-p', '0'], /-p\/--envoy-port must be a port number/],
      [['-z', 'abc'], /-z\/--inbound-capture-port must be a port number/],
      [['-m', 'TPROXY'], /TPROXY is not supported/],
      [['-i', '10.0.0.0/33'], /-i\/--istio-service-cidr: "10.0.0.0\/33" is not an IP address or CIDR/],
      [['-x', '*'], /-x\/--istio-service-exclude-cidr: "\*" is not/],
      [['-u', 'istio'], /-u\/--proxy-uid must be numeric ids/],
      [['-b', '80,http'], /-b\/--istio-inbound-ports must be a port number/],
      [['-p', '15006'], /-p and -z must be different ports/],
      [['-c', 'a b'], /-c: "a b" is not an interface name/],
      [['--bogus'], /Unknown option '--bogus'/],
    ];
    for (const [flags, message] of cases) {
      expect(() => parseIptablesFlags(flags), flags.join(' ')).toThrow(IptablesFlagError);
      expect(() => parseIptablesFlags(flags), flags.join(' ')).toThrow(message);
    }
  });
});

const SAVED_AFTER_INSTALL = `# Generated by iptables-save v1.8.9 (nf_tables)
*nat
:PREROUTING ACCEPT [0:0]
:INPUT ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:ISTIO_INBOUND - [0:0]
:ISTIO_IN_REDIRECT - [0:0]
:ISTIO_OUTPUT - [0:0]
:ISTIO_REDIRECT - [0:0]
:ISTIO_DIVERT - [0:0]
-A PREROUTING -i eth9 -j RETURN
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A PREROUTING -p tcp -m tcp --dport 5000 -j DNAT --to-destination 10.1.1.1
-A OUTPUT -p tcp -j ISTIO_OUTPUT
-A ISTIO_INBOUND -p tcp -m tcp --dport 15008 -j RETURN
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
COMMIT
*filter
:INPUT ACCEPT [0:0]
-A INPUT -j ISTIO_NOT_NAT
COMMIT
`;

describe('iptables-restore transactions', () => {
  const cfg = parseIptablesFlags(['-b', '*', '-i', '*', '-c', 'eth9']).config;

  it('reads the nat table of iptables-save, and only it', () => {
    const saved = parseSave(SAVED_AFTER_INSTALL);
    expect([...saved.chains]).toContain('ISTIO_DIVERT');
    expect(saved.rules.some((r) => r.spec.includes('ISTIO_NOT_NAT'))).toBe(false);
    expect(saved.rules).toContainEqual({ chain: 'OUTPUT', spec: '-p tcp -j ISTIO_OUTPUT' });
  });

  it('replaces an earlier capture: our chains declared (emptied), old jumps removed, strays deleted, rules appended', () => {
    const script = restoreScript(buildRules(cfg, 4), parseSave(SAVED_AFTER_INSTALL)).split('\n');
    expect(script.slice(0, 5)).toEqual([
      '*nat',
      ':ISTIO_INBOUND - [0:0]',
      ':ISTIO_REDIRECT - [0:0]',
      ':ISTIO_IN_REDIRECT - [0:0]',
      ':ISTIO_OUTPUT - [0:0]',
    ]);
    expect(script).toContain('-D PREROUTING -i eth9 -j RETURN');
    expect(script).toContain('-D PREROUTING -p tcp -j ISTIO_INBOUND');
    expect(script).toContain('-D OUTPUT -p tcp -j ISTIO_OUTPUT');
    expect(script).toContain('-F ISTIO_DIVERT');
    expect(script).toContain('-X ISTIO_DIVERT');
    // Someone else's rule stays.
    expect(script.some((l) => l.includes('DNAT'))).toBe(false);
    // Our chains are never deleted in the same transaction that fills them.
    expect(script).not.toContain('-X ISTIO_OUTPUT');
    expect(script.filter((l) => l === '-A PREROUTING -p tcp -j ISTIO_INBOUND')).toHaveLength(1);
    expect(script.slice(-2)).toEqual(['COMMIT', '']);
  });

  it('cleanup removes only what exists: jumps, our interface exclusions, every ISTIO_ chain', () => {
    const script = cleanupScript(parseSave(SAVED_AFTER_INSTALL), buildRules(cfg, 4).rules).split('\n');
    expect(script).toEqual([
      '*nat',
      '-D PREROUTING -i eth9 -j RETURN',
      '-D PREROUTING -p tcp -j ISTIO_INBOUND',
      '-D OUTPUT -p tcp -j ISTIO_OUTPUT',
      '-F ISTIO_INBOUND',
      '-F ISTIO_IN_REDIRECT',
      '-F ISTIO_OUTPUT',
      '-F ISTIO_REDIRECT',
      '-F ISTIO_DIVERT',
      '-X ISTIO_INBOUND',
      '-X ISTIO_IN_REDIRECT',
      '-X ISTIO_OUTPUT',
      '-X ISTIO_REDIRECT',
      '-X ISTIO_DIVERT',
      'COMMIT',
      '',
    ]);
    expect(cleanupScript(parseSave('*nat\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n'))).toBe('*nat\nCOMMIT\n');
  });
});
