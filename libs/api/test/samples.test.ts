import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { configKey, formatIssue, parseConfig } from '../src/index.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../../..');

function parseFile(file: string) {
  return parseConfig(fs.readFileSync(file, 'utf8'), path.relative(repo, file));
}

describe("Istio's Bookinfo samples parse clean", () => {
  const dir = path.join(here, 'fixtures', 'bookinfo');
  const expected: Record<string, string[]> = {
    'bookinfo-gateway.yaml': ['Gateway/default/bookinfo-gateway', 'VirtualService/default/bookinfo'],
    'destination-rule-all.yaml': [
      'DestinationRule/default/productpage',
      'DestinationRule/default/reviews',
      'DestinationRule/default/ratings',
      'DestinationRule/default/details',
    ],
    'destination-rule-all-mtls.yaml': [
      'DestinationRule/default/productpage',
      'DestinationRule/default/reviews',
    ],
    'virtual-service-reviews-80-20.yaml': ['VirtualService/default/reviews'],
    'virtual-service-reviews-jason-v2-v3.yaml': ['VirtualService/default/reviews'],
    'virtual-service-ratings-test-delay.yaml': ['VirtualService/default/ratings'],
    'virtual-service-ratings-test-abort.yaml': ['VirtualService/default/ratings'],
  };
  for (const [file, keys] of Object.entries(expected)) {
    it(file, () => {
      const { resources, issues } = parseFile(path.join(dir, file));
      expect(issues.map(formatIssue)).toEqual([]);
      expect(resources.map(configKey)).toEqual(keys);
    });
  }
});

describe("the repository's own Istio config (deploy/, pilot fixtures) has no errors", () => {
  const files = [
    ...['deploy/local', 'deploy/samples/bookinfo/networking']
      .map((d) => path.join(repo, d))
      .filter((d) => fs.existsSync(d))
      .flatMap((d) => fs.readdirSync(d).map((f) => path.join(d, f))),
    path.join(repo, 'apps/pilot/test/fixtures/small-mesh.yaml'),
  ].filter((f) => /\.(ya?ml|json)$/.test(f) && fs.existsSync(f));

  it('finds the files', () => {
    expect(files.length).toBeGreaterThan(0);
  });

  for (const file of files) {
    it(path.relative(repo, file), () => {
      const { resources, issues } = parseFile(file);
      expect(issues.filter((i) => i.severity === 'error').map(formatIssue)).toEqual([]);
      expect(resources.length).toBeGreaterThan(0);
    });
  }
});
