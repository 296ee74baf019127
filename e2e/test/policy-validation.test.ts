import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getJson } from '../src/http.js';
import { TestMesh } from '../src/mesh.js';
import { appEntry } from '../src/processes.js';

/**
 * Invalid security policies at the door: `mizzen apply` and pilot's config
 * API (a real pilot process) refuse a file with a bad CIDR, an unknown
 * condition key, or a selector together with targetRefs — one sentence per
 * problem naming the file, document, field and reason — and apply nothing
 * from it, not even its valid documents.
 */
const GOOD = `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: reviews-from-office, namespace: default }
spec:
  selector: { matchLabels: { app: reviews } }
  rules: [{ from: [{ source: { ipBlocks: ["10.0.0.0/8"] } }] }]
`;

const CASES: { name: string; yaml: string; error: string }[] = [
  {
    name: 'a bad CIDR in ipBlocks',
    yaml: `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: bad-cidr, namespace: default }
spec:
  selector: { matchLabels: { app: reviews } }
  rules: [{ from: [{ source: { ipBlocks: ["10.0.0.0/33"] } }] }]
`,
    error:
      'document 2 (AuthorizationPolicy default/bad-cidr): spec.rules[0].from[0].source.ipBlocks[0]: "10.0.0.0/33" has an invalid prefix length (0-32)',
  },
  {
    name: 'an unknown when key',
    yaml: `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: bad-when, namespace: default }
spec:
  selector: { matchLabels: { app: reviews } }
  rules: [{ when: [{ key: request.colour, values: [red] }] }]
`,
    error:
      'document 2 (AuthorizationPolicy default/bad-when): spec.rules[0].when[0].key: unknown condition key "request.colour"',
  },
  {
    name: 'selector together with targetRefs',
    yaml: `
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: { name: both-scopes, namespace: default }
spec:
  selector: { matchLabels: { app: reviews } }
  targetRefs: [{ kind: Gateway, group: gateway.networking.k8s.io, name: edge }]
  rules: [{}]
`,
    error:
      'document 2 (AuthorizationPolicy default/both-scopes): spec: only one of selector, targetRef or targetRefs may be set, found selector and targetRefs',
  },
];

describe('invalid security policies through mizzen apply and the config API', () => {
  const mesh = new TestMesh();

  const mizzen = (...args: string[]) =>
    spawnSync(process.execPath, [appEntry('@mizzen/cli'), ...args, '--pilot', mesh.pilot!.base], {
      encoding: 'utf8',
      env: { ...process.env, MIZZEN_HOME: mesh.dir },
      timeout: 20_000,
    });
  const policies = async () =>
    (
      await getJson<{ items: { metadata: { name: string } }[] }>(
        `${mesh.pilot!.base}/apis/config?kind=AuthorizationPolicy`,
      )
    ).items.map((i) => i.metadata.name);

  beforeAll(async () => {
    await mesh.startPilot();
  }, 60_000);

  afterAll(async () => {
    await mesh.stop();
  });

  for (const c of CASES) {
    it(`refuses ${c.name}: one sentence naming the document and field, and nothing applied`, async () => {
      const file = path.join(mesh.dir, `${c.name.replaceAll(' ', '-')}.yaml`);
      // A valid policy first in the same file: it must not be applied either.
      fs.writeFileSync(file, `${GOOD}---${c.yaml}`);
      const cli = mizzen('apply', '-f', file);
      expect(cli.status).toBe(1);
      const lines = cli.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^error: ${escapeRegExp(`${file}: ${c.error}`)} \\(line \\d+\\)$`));
      expect(cli.stdout).toBe('');

      // The same through the API directly: 400, the same sentence, nothing stored.
      const api = await mesh.apply(`${GOOD}---${c.yaml}`, 'policy.yaml');
      expect(api.status).toBe(400);
      expect(api.body.errors).toHaveLength(1);
      expect(api.body.errors![0]).toMatch(
        new RegExp(`^${escapeRegExp(`policy.yaml: ${c.error}`)} \\(line \\d+\\)$`),
      );
      expect(await policies()).toEqual([]);
    });
  }

  it('applies the valid policy on its own, so the refusals above were about their documents', async () => {
    const file = path.join(mesh.dir, 'good.yaml');
    fs.writeFileSync(file, GOOD);
    const cli = mizzen('apply', '-f', file);
    expect(cli.stderr).toBe('');
    expect(cli.stdout.trim()).toBe('authorizationpolicy.security.istio.io/reviews-from-office created');
    expect(await policies()).toEqual(['reviews-from-office']);
  });
});

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
