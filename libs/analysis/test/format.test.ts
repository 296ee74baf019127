import { parseConfig } from '@mizzen/api';
import { describe, expect, it } from 'vitest';
import { atOrAbove, formatMessage, messageObject, msg, schemaMessages } from '../src/index.js';

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
