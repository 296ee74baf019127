import { parseConfig } from '@mizzen/api';
import { describe, expect, it } from 'vitest';
import { analyzeChange, atOrAbove, formatMessage, messageObject, msg, schemaMessages } from '../src/index.js';
import { resources } from './helpers.js';

describe('istioctl formats', () => {
  const m = {
    ...msg.referencedResourceNotFound(
      { kind: 'VirtualService', namespace: 'default', name: 'reviews' },
      'host',
      'ratings',
    ),
  };
  it('a line, with the file reference when there is one', () => {
    expect(formatMessage(m)).toBe(
      'Error [IST0101] (VirtualService default/reviews) Referenced host not found: "ratings"',
    );
    expect(formatMessage({ ...m, reference: 'vs.yaml:3' })).toBe(
      'Error [IST0101] (VirtualService default/reviews vs.yaml:3) Referenced host not found: "ratings"',
    );
  });

  it('an object for -o json|yaml', () => {
    expect(messageObject({ ...m, reference: 'vs.yaml:3' })).toEqual({
      code: 'IST0101',
      level: 'Error',
      origin: 'VirtualService default/reviews',
      reference: 'vs.yaml:3',
      message: 'Referenced host not found: "ratings"',
      documentationUrl: 'https://istio.io/v1.27/docs/reference/config/analysis/ist0101/',
    });
  });

  it('levels compare as thresholds', () => {
    expect(atOrAbove('Error', 'Warning')).toBe(true);
    expect(atOrAbove('Warning', 'Error')).toBe(false);
    expect(atOrAbove('Info', 'Info')).toBe(true);
  });
});

describe('IST0106 SchemaValidationError and IST0133 SchemaWarning', () => {
  it('turns validation issues into messages referencing file and line', () => {
    const result = parseConfig(
      `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: { host: reviews }
      weight: 120
`,
      'bad.yaml',
    );
    expect(schemaMessages(result.issues).map(formatMessage)).toEqual([
      'Error [IST0106] (VirtualService default/reviews bad.yaml:9) Schema validation error: spec.http[0].route[0].weight: must be between 0 and 100, got 120',
    ]);
  });
});

describe('analyzeChange', () => {
  const VS = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: reviews }
spec:
  hosts: [reviews]
  http: [{ route: [{ destination: { host: reviews, subset: v2 } }] }]
`;
  const DR = (subsets: string) => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: { name: reviews }
spec: { host: reviews, subsets: [${subsets}] }
`;
  const settings = { domainSuffix: 'cluster.local' };
  it('a DestinationRule that drops a subset a VirtualService routes to: IST0101 on that VirtualService', () => {
    const current = resources(`${VS}---\n${DR('{ name: v2, labels: { version: v2 } }')}`);
    const lines = analyzeChange(
      { resources: current, settings },
      { applied: resources(DR('{ name: v1, labels: { version: v1 } }')) },
    ).map(formatMessage);
    expect(lines).toEqual([
      'Error [IST0101] (VirtualService default/reviews) Referenced host+subset in destinationrule not found: "reviews+v2"',
    ]);
    const deleted = analyzeChange(
      { resources: current, settings },
      { deleted: ['DestinationRule/default/reviews'] },
    );
    expect(deleted.map(formatMessage)).toEqual(lines);
  });

  it('messages about resources the change does not touch are left out', () => {
    const current = resources(VS);
    expect(
      analyzeChange(
        { resources: current, settings },
        { applied: resources(DR('{ name: v2 }').replace('reviews }', 'other }')) },
      ),
    ).toEqual([]);
  });
});
