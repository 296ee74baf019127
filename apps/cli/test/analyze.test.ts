import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main, type PilotProcess, startPilot } from './pilot-process.js';

/** A VirtualService to a subset no rule defines (IST0101), with a rule after a catch-all (IST0130). */
const PROBLEMS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: { host: reviews, subset: v4 }
  - route:
    - destination: { host: reviews, subset: v1 }
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  subsets:
  - name: v1
    labels: { version: v1 }
---
apiVersion: v1
kind: Service
metadata:
  name: reviews
spec:
  ports: [{ port: 9080, name: http }]
`;

const CLEAN = PROBLEMS.replace('subset: v4', 'subset: v1').replace(
  '  - route:\n    - destination: { host: reviews, subset: v1 }\n---',
  '---',
);

/** Only a warning: TCP without addresses (IST0134). */
const WARNING_ONLY = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: db, namespace: default }
spec:
  hosts: [db.example.com]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{ number: 5432, name: tcp, protocol: TCP }]
`;

const OK = '✔ No validation issues found when analyzing namespace: default.\n';

describe('mizzen analyze --use-kube=false (files only, no pilot)', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-cli-analyze-'));
  const write = (name: string, text: string) => {
    const file = path.join(dir, name);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, text);
    return file;
  };
  // No pilot anywhere: --use-kube=false must not need one.
  const analyze = (...args: string[]) =>
    spawnSync(process.execPath, [main, 'analyze', '--use-kube=false', ...args], {
      encoding: 'utf8',
      env: { ...process.env, MIZZEN_HOME: dir, MIZZEN_PILOT: 'http://127.0.0.1:9' },
      timeout: 20_000,
    });

  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('prints istioctl lines for files with known problems and exits 79', () => {
    const file = write('problems.yaml', PROBLEMS);
    const r = analyze('-f', file);
    expect(r.stderr).toBe('');
    expect(r.stdout.split('\n')).toEqual([
      `Error [IST0101] (VirtualService default/reviews ${file}:1) Referenced host+subset in destinationrule not found: "reviews+v4"`,
      `Warning [IST0130] (VirtualService default/reviews ${file}:1) VirtualService rule #1 not used (only the last rule can have no matches).`,
      // Validation's own warning about the same rule, at its line, as istioctl prints schema warnings.
      `Warning [IST0133] (VirtualService default/reviews ${file}:10) Schema validation warning: spec.http[1]: this rule is never used: rule 0 before it has no match and takes all traffic`,
      '',
    ]);
    expect(r.status).toBe(79);
  });

  it('prints the ✔ line and exits 0 for a clean set', () => {
    const r = analyze('-f', write('clean.yaml', CLEAN));
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe(OK);
    expect(r.status).toBe(0);
  });

  it('points at the line each resource starts on: a later document, an item of a List', () => {
    const list = WARNING_ONLY.replace('name: db,', 'name: db-in-list,')
      .trimEnd()
      .split('\n')
      .map((l, i) => (i === 0 ? `  - ${l}` : `    ${l}`))
      .join('\n');
    const file = write('located.yaml', `${WARNING_ONLY}---\napiVersion: v1\nkind: List\nitems:\n${list}\n`);
    const r = analyze('-f', file);
    expect(r.stdout.split('\n')).toEqual([
      `Warning [IST0134] (ServiceEntry default/db ${file}:1) ServiceEntry addresses are required for this protocol.`,
      `Warning [IST0134] (ServiceEntry default/db-in-list ${file}:13) ServiceEntry addresses are required for this protocol.`,
      '',
    ]);
  });

  it('a warning fails only at --failure-threshold Warning; --output-threshold hides it', () => {
    const file = write('warning.yaml', WARNING_ONLY);
    const line = `Warning [IST0134] (ServiceEntry default/db ${file}:1) ServiceEntry addresses are required for this protocol.\n`;
    const plain = analyze('-f', file);
    expect([plain.stdout, plain.status]).toEqual([line, 0]);
    const strict = analyze('-f', file, '--failure-threshold', 'Warning');
    expect([strict.stdout, strict.status]).toEqual([line, 79]);
    const quiet = analyze('-f', file, '--output-threshold', 'Error', '--failure-threshold', 'Warning');
    expect([quiet.stdout, quiet.status]).toEqual(['', 79]);
  });

  it('-o json prints the messages as objects', () => {
    const file = write('problems-json.yaml', PROBLEMS);
    const r = analyze('-f', file, '-o', 'json');
    expect(r.status).toBe(79);
    expect(JSON.parse(r.stdout)).toEqual([
      {
        code: 'IST0101',
        level: 'Error',
        origin: 'VirtualService default/reviews',
        reference: `${file}:1`,
        message: 'Referenced host+subset in destinationrule not found: "reviews+v4"',
        documentationUrl: 'https://istio.io/v1.27/docs/reference/config/analysis/ist0101/',
      },
      expect.objectContaining({ code: 'IST0130', level: 'Warning' }),
      expect.objectContaining({ code: 'IST0133', level: 'Warning', reference: `${file}:10` }),
    ]);
    const clean = analyze('-f', write('clean-json.yaml', CLEAN), '-o', 'json');
    expect([JSON.parse(clean.stdout), clean.status]).toEqual([[], 0]);
  });

  it('a schema error is IST0106 at its line; a host no Service has is IST0101', () => {
    const file = write(
      'schema.yaml',
      CLEAN.replace(
        '- destination: { host: reviews, subset: v1 }',
        '- destination: { host: reviewz }\n      weight: 120',
      ),
    );
    const r = analyze('-f', file);
    expect(r.stdout.split('\n')).toEqual([
      `Error [IST0106] (VirtualService default/reviews ${file}:10) Schema validation error: spec.http[0].route[0].weight: must be between 0 and 100, got 120`,
      '',
    ]);
    const host = write('host.yaml', CLEAN.replace('host: reviews, subset: v1', 'host: reviewz'));
    expect(analyze('-f', host).stdout).toBe(
      `Error [IST0101] (VirtualService default/reviews ${host}:1) Referenced host not found: "reviewz"\n`,
    );
  });

  it('unreadable input is a data error (65) naming the file and document, analyzing nothing', () => {
    const broken = write('broken.yaml', `${CLEAN}---\nkind: [\n`);
    const r = analyze('-f', broken);
    expect(r.status).toBe(65);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      new RegExp(`^error: ${broken}: document 4: YAML syntax error at line \\d+, column \\d+: .+\\n$`),
    );
    const missing = analyze('-f', path.join(dir, 'missing.yaml'));
    expect([missing.status, missing.stderr]).toEqual([
      65,
      `error: ${path.join(dir, 'missing.yaml')}: no such file or directory\n`,
    ]);
  });

  it('-n and -A choose the namespace reported; -R reads directories recursively', () => {
    const team = write(
      'tree/nested/team.yaml',
      PROBLEMS.replace(/name: reviews\n/g, 'name: reviews\n  namespace: team\n'),
    );
    const tree = path.join(dir, 'tree');
    expect(analyze('-f', tree).stderr).toBe(OK); // not recursive: nested/ is not read
    const inDefault = analyze('-f', tree, '-R');
    expect([inDefault.stdout, inDefault.stderr, inDefault.status]).toEqual(['', OK, 0]);
    const inTeam = analyze('-R', '-f', tree, '-n', 'team');
    expect(inTeam.stdout).toContain(`Error [IST0101] (VirtualService team/reviews ${team}:1)`);
    expect(inTeam.status).toBe(79);
    const all = analyze('-R', '-f', tree, '-A');
    expect(all.stdout).toBe(inTeam.stdout);
    const allClean = analyze('-f', write('clean-all.yaml', CLEAN), '-A');
    expect(allClean.stderr).toBe('✔ No validation issues found when analyzing all namespaces.\n');
  });

  it('bad flags are usage errors (2)', () => {
    const file = write('flags.yaml', CLEAN);
    expect(analyze('-f', file, '--failure-threshold', 'Severe').status).toBe(2);
    expect(analyze('-f', file, '-o', 'table').status).toBe(2);
    expect(analyze().status).toBe(2);
  });
});

const LIVE = `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{ number: 9080, name: http, protocol: HTTP }]
  endpoints: [{ address: 127.0.0.1, labels: { version: v1 } }]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: default }
spec:
  host: reviews
  subsets: [{ name: v1, labels: { version: v1 } }]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews, namespace: default }
spec:
  hosts: [reviews]
  http: [{ route: [{ destination: { host: reviews, subset: v1 } }] }]
`;

/** Only v2: the live VirtualService's v1 would be gone. */
const RULE_V2 = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews, namespace: default }
spec:
  host: reviews
  subsets: [{ name: v2, labels: { version: v2 } }]
`;

describe('mizzen analyze against a running pilot', () => {
  let pilot: PilotProcess;

  beforeAll(async () => {
    pilot = await startPilot('mizzen-cli-analyze-live-', { 'mesh.yaml': LIVE });
  });

  afterAll(() => pilot.stop());

  const liveRules = () => JSON.parse(pilot.mizzen('get', 'destinationrules', '-o', 'json').stdout).items;

  it('analyzes the live config: clean', () => {
    const r = pilot.mizzen('analyze');
    expect([r.stdout, r.stderr, r.status]).toEqual(['', OK, 0]);
  });

  it('a -f overlay changes the result without applying anything', () => {
    const before = liveRules();
    const file = path.join(pilot.dir, 'rule-v2.yaml');
    fs.writeFileSync(file, RULE_V2);
    const r = pilot.mizzen('analyze', '-f', file);
    // The live VirtualService (no file reference) against the overlaid rule.
    expect(r.stdout).toBe(
      'Error [IST0101] (VirtualService default/reviews) Referenced host+subset in destinationrule not found: "reviews+v1"\n',
    );
    expect(r.status).toBe(79);
    expect(liveRules()).toEqual(before);
    expect(pilot.mizzen('analyze').status).toBe(0);
  });

  it('checks hosts against pilot’s registry, and -o json parses', () => {
    const file = path.join(pilot.dir, 'ghost.yaml');
    fs.writeFileSync(
      file,
      LIVE.slice(LIVE.lastIndexOf('apiVersion'))
        .replace('name: reviews, namespace', 'name: ghost, namespace')
        .replace('host: reviews, subset: v1', 'host: ghost'),
    );
    const r = pilot.mizzen('analyze', '-f', file, '-o', 'json');
    expect(r.status).toBe(79);
    expect(JSON.parse(r.stdout)).toEqual([
      expect.objectContaining({
        code: 'IST0101',
        origin: 'VirtualService default/ghost',
        reference: `${file}:1`,
        message: 'Referenced host not found: "ghost"',
      }),
      // Two VirtualServices now claim reviews for sidecars.
      expect.objectContaining({ code: 'IST0109', origin: 'VirtualService default/ghost' }),
      expect.objectContaining({ code: 'IST0109', origin: 'VirtualService default/reviews' }),
    ]);
  });
});
