import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { configKey, DirectorySource, formatIssue, type ValidationIssue } from '../src/index.js';
import { tempDir, within } from './helpers.js';

const vs = (name: string, subset = 'v1') => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: ${name}
spec:
  hosts: [${name}]
  http:
    - route:
        - destination: { host: ${name}, subset: ${subset} }
`;

const dr = (name: string) => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: ${name} }
spec: { host: ${name}, subsets: [{ name: v1, labels: { version: v1 } }] }
`;

/** A started DirectorySource that records its change events and issue reports, for awaiting them. */
class Harness {
  readonly source: DirectorySource;
  changes = 0;
  private readonly reports: ValidationIssue[][] = [];
  private changeWaiters: (() => void)[] = [];
  private issueWaiters: ((issues: ValidationIssue[]) => void)[] = [];

  constructor(readonly dir: string) {
    this.source = new DirectorySource(dir, {
      debounceMs: 20,
      onIssues: (issues) => {
        this.reports.push(issues);
        for (const w of this.issueWaiters.splice(0)) w(issues);
      },
    });
    this.source.onChange(() => {
      this.changes++;
      for (const w of this.changeWaiters.splice(0)) w();
    });
  }

  keys(): string[] {
    return this.source.list().map(configKey);
  }

  /** Runs `action` and waits for the change event it causes. */
  async change(action: () => void): Promise<void> {
    const done = within<void>(5000, 'a change event', (resolve) => {
      this.changeWaiters.push(() => resolve());
      return () => {};
    });
    action();
    await done;
  }

  /** Runs `action` and waits for the issues it causes to be reported. */
  async issues(action: () => void): Promise<ValidationIssue[]> {
    const done = within<ValidationIssue[]>(5000, 'an issue report', (resolve) => {
      this.issueWaiters.push(resolve);
      return () => {};
    });
    action();
    return done;
  }

  write(file: string, text: string): void {
    const full = path.join(this.dir, file);
    fs.mkdirSync(path.dirname(full), { recursive: true });
    fs.writeFileSync(full, text);
  }
}

const dirs: string[] = [];
const sources: DirectorySource[] = [];

async function harness(files: Record<string, string>): Promise<Harness> {
  const dir = tempDir();
  dirs.push(dir);
  const h = new Harness(dir);
  for (const [f, text] of Object.entries(files)) h.write(f, text);
  sources.push(h.source);
  await h.source.start();
  return h;
}

afterEach(async () => {
  for (const s of sources.splice(0)) await s.stop();
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('DirectorySource', () => {
  it('refuses to start on a missing directory', async () => {
    const missing = path.join(tempDir(), 'nope');
    await expect(new DirectorySource(missing).start()).rejects.toThrow(
      `config directory ${missing} does not exist`,
    );
  });

  it('loads *.yaml, *.yml and *.json recursively, in path order, skipping other and hidden files', async () => {
    const h = await harness({
      'b/reviews.yaml': vs('reviews'),
      'a/ratings.yml': dr('ratings'),
      'details.json': JSON.stringify({
        apiVersion: 'networking.istio.io/v1',
        kind: 'DestinationRule',
        metadata: { name: 'details' },
        spec: { host: 'details' },
      }),
      'notes.txt': vs('ignored'),
      '.hidden.yaml': vs('hidden'),
      '.git/x.yaml': vs('git'),
    });
    expect(h.source.name).toBe(`dir:${h.dir}`);
    expect(h.keys()).toEqual([
      'DestinationRule/default/ratings',
      'VirtualService/default/reviews',
      'DestinationRule/default/details',
    ]);
    expect(h.source.issues()).toEqual([]);
  });

  it('picks up edits, new files and deletions', async () => {
    const h = await harness({ 'reviews.yaml': vs('reviews') });
    await h.change(() => h.write('reviews.yaml', vs('reviews', 'v2')));
    const spec = h.source.list()[0]!.spec as { http: { route: { destination: { subset: string } }[] }[] };
    expect(spec.http[0]!.route[0]!.destination.subset).toBe('v2');

    await h.change(() => h.write('sub/dir/ratings.yaml', dr('ratings')));
    expect(h.keys()).toEqual(['VirtualService/default/reviews', 'DestinationRule/default/ratings']);

    await h.change(() => fs.rmSync(path.join(h.dir, 'reviews.yaml')));
    expect(h.keys()).toEqual(['DestinationRule/default/ratings']);
  });

  it('drops the resources of a file that is emptied (after a second look)', async () => {
    const h = await harness({ 'reviews.yaml': vs('reviews'), 'ratings.yaml': dr('ratings') });
    await h.change(() => h.write('reviews.yaml', ''));
    expect(h.keys()).toEqual(['DestinationRule/default/ratings']);
  });

  it('picks up editors that write a temporary file and rename it into place', async () => {
    const h = await harness({ 'reviews.yaml': vs('reviews') });
    await h.change(() => {
      const tmp = path.join(h.dir, '.reviews.yaml.swp');
      fs.writeFileSync(tmp, vs('reviews', 'v3'));
      fs.renameSync(tmp, path.join(h.dir, 'reviews.yaml'));
    });
    expect(JSON.stringify(h.source.list()[0]!.spec)).toContain('"subset":"v3"');
  });

  it('keeps the last good version of a broken file, reports why, and clears the report when fixed', async () => {
    const h = await harness({ 'reviews.yaml': vs('reviews'), 'ratings.yaml': dr('ratings') });
    const before = h.source.list();
    const changesBefore = h.changes;

    const broken = vs('reviews', 'v2').replace('subset: v2 }', 'subset: v2 }\n          weight: 120');
    const reported = await h.issues(() => h.write('reviews.yaml', broken));
    expect(reported.map(formatIssue)).toEqual([
      `${path.join(h.dir, 'reviews.yaml')}: document 1 (VirtualService default/reviews): spec.http[0].route[0].weight: must be between 0 and 100, got 120 (line 10)`,
    ]);
    expect(h.source.issues()).toEqual(reported);
    expect(h.source.list()).toEqual(before);
    expect(h.changes).toBe(changesBefore);

    // Still broken differently: a YAML error, still the last good version.
    const syntax = await h.issues(() => h.write('reviews.yaml', 'spec: [oops\n'));
    expect(syntax[0]!.message).toMatch(/^YAML syntax error at line 2/);
    expect(h.source.list()).toEqual(before);

    await h.change(() => h.write('reviews.yaml', vs('reviews', 'v2')));
    expect(h.source.issues()).toEqual([]);
    expect(JSON.stringify(h.source.list())).toContain('"subset":"v2"');
  });

  it('contributes nothing from a file that was never valid', async () => {
    const h = await harness({ 'ratings.yaml': dr('ratings'), 'bad.yaml': 'kind: Nonsense\n' });
    expect(h.keys()).toEqual(['DestinationRule/default/ratings']);
    expect(h.source.issues().map((i) => i.path)).toEqual(['kind', 'metadata']);
  });

  it('lets the first file by path win when two define the same resource, and warns about the other', async () => {
    const h = await harness({ 'a.yaml': vs('reviews', 'v1'), 'b.yaml': vs('reviews', 'v2') });
    expect(h.keys()).toEqual(['VirtualService/default/reviews']);
    expect(JSON.stringify(h.source.list()[0]!.spec)).toContain('"subset":"v1"');
    expect(h.source.issues().map(formatIssue)).toEqual([
      `${path.join(h.dir, 'b.yaml')}: document 1 (VirtualService default/reviews): warning: metadata.name: ignored: already defined in ${path.join(h.dir, 'a.yaml')} (document 1), which comes first`,
    ]);
    await h.change(() => fs.rmSync(path.join(h.dir, 'a.yaml')));
    expect(JSON.stringify(h.source.list()[0]!.spec)).toContain('"subset":"v2"');
    expect(h.source.issues()).toEqual([]);
  });

  it('does not announce a change when the resources stay the same', async () => {
    const h = await harness({ 'reviews.yaml': vs('reviews') });
    const changesBefore = h.changes;
    // Same resource written differently (flow style, comments), plus a duplicate that only adds a warning:
    // the reload is observable through the warning, and must not count as a change.
    const same = `# rewritten\n${JSON.stringify({
      apiVersion: 'networking.istio.io/v1',
      kind: 'VirtualService',
      metadata: { name: 'reviews' },
      spec: { http: [{ route: [{ destination: { subset: 'v1', host: 'reviews' } }] }], hosts: ['reviews'] },
    })}\n---\n${vs('reviews')}`;
    const reported = await h.issues(() => h.write('reviews.yaml', same));
    expect(reported.map((i) => i.message)).toEqual([
      `also defined in document 1 of ${path.join(h.dir, 'reviews.yaml')}`,
    ]);
    expect(h.changes).toBe(changesBefore);
  });

  it('stops watching on stop()', async () => {
    const h = await harness({ 'reviews.yaml': vs('reviews') });
    await h.source.stop();
    h.write('ratings.yaml', dr('ratings'));
    // Prove no reload happens: a fresh source sees the file, the stopped one keeps its old view.
    const fresh = new DirectorySource(h.dir);
    await fresh.start();
    await fresh.stop();
    expect(fresh.list().map(configKey)).toContain('DestinationRule/default/ratings');
    expect(h.keys()).toEqual(['VirtualService/default/reviews']);
  });
});
