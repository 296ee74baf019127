import type { ConfigResource } from '@mizzen/api';
import { describe, expect, it } from 'vitest';
import { effectivePeerAuthentication, mtlsModeForPort } from '../src/index.js';
import { NS, pa, WORKLOAD } from './helpers.js';

const ROOT = { namespace: 'istio-system' };
const T1 = '2024-01-01T00:00:00Z';
const T2 = '2024-02-01T00:00:00Z';
const sel = { matchLabels: { app: 'httpbin' } };

type Row = [name: string, policies: ConfigResource[], mode: string, ports?: Record<number, string>];

const ROWS: Row[] = [
  ['nothing set: PERMISSIVE', [], 'PERMISSIVE'],
  ['mesh-wide STRICT', [pa('default', { mtls: { mode: 'STRICT' } }, ROOT)], 'STRICT'],
  [
    'namespace over mesh',
    [pa('default', { mtls: { mode: 'STRICT' } }, ROOT), pa('ns', { mtls: { mode: 'DISABLE' } })],
    'DISABLE',
  ],
  [
    'workload over namespace',
    [pa('ns', { mtls: { mode: 'DISABLE' } }), pa('wl', { selector: sel, mtls: { mode: 'STRICT' } })],
    'STRICT',
  ],
  [
    'UNSET namespace inherits mesh',
    [pa('default', { mtls: { mode: 'STRICT' } }, ROOT), pa('ns', { mtls: { mode: 'UNSET' } })],
    'STRICT',
  ],
  [
    'no mtls inherits',
    [pa('default', { mtls: { mode: 'STRICT' } }, ROOT), pa('ns', {}), pa('wl', { selector: sel })],
    'STRICT',
  ],
  [
    'UNSET workload inherits namespace',
    [pa('ns', { mtls: { mode: 'DISABLE' } }), pa('wl', { selector: sel, mtls: { mode: 'UNSET' } })],
    'DISABLE',
  ],
  [
    'oldest namespace policy wins',
    [
      pa('newer', { mtls: { mode: 'STRICT' } }, { created: T2 }),
      pa('older', { mtls: { mode: 'DISABLE' } }, { created: T1 }),
    ],
    'DISABLE',
  ],
  [
    'same age: first by name wins',
    [pa('b', { mtls: { mode: 'STRICT' } }), pa('a', { mtls: { mode: 'DISABLE' } })],
    'DISABLE',
  ],
  [
    'oldest workload policy wins',
    [
      pa('w2', { selector: sel, mtls: { mode: 'STRICT' } }, { created: T2 }),
      pa('w1', { selector: { matchLabels: { version: 'v1' } }, mtls: { mode: 'DISABLE' } }, { created: T1 }),
    ],
    'DISABLE',
  ],
  [
    'oldest mesh policy wins',
    [
      pa('m2', { mtls: { mode: 'DISABLE' } }, { ...ROOT, created: T2 }),
      pa('m1', { mtls: { mode: 'STRICT' } }, { ...ROOT, created: T1 }),
    ],
    'STRICT',
  ],
  [
    'selector that does not match is ignored',
    [pa('wl', { selector: { matchLabels: { app: 'other' } }, mtls: { mode: 'STRICT' } })],
    'PERMISSIVE',
  ],
  [
    'empty selector is namespace-wide',
    [pa('ns', { selector: { matchLabels: {} }, mtls: { mode: 'STRICT' } })],
    'STRICT',
  ],
  [
    'other namespaces do not count',
    [pa('ns', { mtls: { mode: 'STRICT' } }, { namespace: 'bar' })],
    'PERMISSIVE',
  ],
  [
    'selector policies in the root namespace are ignored',
    [pa('wl', { selector: sel, mtls: { mode: 'STRICT' } }, ROOT)],
    'PERMISSIVE',
  ],
  [
    'port-level with a selector, UNSET port inherits the workload mode',
    [
      pa('wl', {
        selector: sel,
        mtls: { mode: 'STRICT' },
        portLevelMtls: { '8080': { mode: 'DISABLE' }, '9090': { mode: 'UNSET' }, '15000': {} },
      }),
    ],
    'STRICT',
    { 8080: 'DISABLE', 9090: 'STRICT', 15000: 'STRICT' },
  ],
  [
    'port-level UNSET with UNSET workload inherits namespace',
    [
      pa('ns', { mtls: { mode: 'PERMISSIVE' } }),
      pa('wl', { selector: sel, portLevelMtls: { '8080': { mode: 'UNSET' }, '8081': { mode: 'STRICT' } } }),
    ],
    'PERMISSIVE',
    { 8080: 'PERMISSIVE', 8081: 'STRICT' },
  ],
  [
    'port-level without a selector is ignored',
    [pa('ns', { mtls: { mode: 'STRICT' }, portLevelMtls: { '8080': { mode: 'DISABLE' } } })],
    'STRICT',
    {},
  ],
];

describe('PeerAuthentication precedence', () => {
  it.each(ROWS)('%s', (_name, policies, mode, ports = {}) => {
    const eff = effectivePeerAuthentication(policies, WORKLOAD);
    expect(eff.mode).toBe(mode);
    expect(Object.fromEntries(eff.portLevel)).toEqual(ports);
    expect(eff.ports).toEqual(Object.keys(ports).map(Number));
    for (const [port, m] of Object.entries(ports)) expect(mtlsModeForPort(eff, Number(port))).toBe(m);
    expect(mtlsModeForPort(eff, 1)).toBe(mode);
  });

  it('names the deciding policies and reports what it ignored', () => {
    const eff = effectivePeerAuthentication(
      [
        pa('mesh', { mtls: { mode: 'STRICT' } }, { namespace: 'mesh-root' }),
        pa('ns', { portLevelMtls: { '80': { mode: 'DISABLE' } } }),
        pa('wl', { selector: sel, portLevelMtls: { http: { mode: 'DISABLE' } } }),
      ],
      WORKLOAD,
      { rootNamespace: 'mesh-root' },
    );
    expect(eff.sources).toEqual({
      mesh: 'PeerAuthentication mesh-root/mesh',
      namespace: `PeerAuthentication ${NS}/ns`,
      workload: `PeerAuthentication ${NS}/wl`,
    });
    expect(eff.mode).toBe('STRICT');
    expect(eff.issues.map((i) => `${i.resource}: ${i.field}: ${i.message}`)).toEqual([
      'PeerAuthentication foo/wl: spec.portLevelMtls["http"]: "http" is not a port number between 1 and 65535; ignored',
      'PeerAuthentication foo/ns: spec.portLevelMtls: port-level mTLS needs a workload selector; ignored on a mesh- or namespace-wide policy',
    ]);
  });

  it('treats a workload in the root namespace with only mesh policies', () => {
    const eff = effectivePeerAuthentication(
      [
        pa('mesh', { mtls: { mode: 'STRICT' } }, ROOT),
        pa('wl', { selector: sel, mtls: { mode: 'DISABLE' } }, ROOT),
      ],
      { namespace: 'istio-system', labels: { app: 'httpbin' } },
    );
    expect(eff.mode).toBe('STRICT');
  });
});
