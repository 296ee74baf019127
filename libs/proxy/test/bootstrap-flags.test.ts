import { describe, expect, it } from 'vitest';
import { FlagError, parseLocality } from '../src/bootstrap/flags.js';
import { gatewayNode, sidecarNode } from '../src/bootstrap/node.js';

describe('--locality', () => {
  it('parses region[/zone[/subzone]] into Envoy’s Node.locality, and the node carries it', () => {
    expect(parseLocality(undefined)).toBeUndefined();
    expect(parseLocality('us-east')).toEqual({ region: 'us-east' });
    expect(parseLocality('us-east/zone-a/rack1')).toEqual({
      region: 'us-east',
      zone: 'zone-a',
      sub_zone: 'rack1',
    });
    const locality = parseLocality('eu-west/zone-b');
    const common = { ip: '127.0.0.1', labels: {}, adminPort: 1, healthPort: 2, namespace: 'default' };
    expect(
      sidecarNode({ ...common, workload: 'w', serviceAccount: 'sa', ports: [], locality }).locality,
    ).toEqual({
      region: 'eu-west',
      zone: 'zone-b',
    });
    expect(gatewayNode({ ...common, name: 'gw', portMap: {}, locality }).locality).toEqual(locality);
    expect(
      sidecarNode({ ...common, workload: 'w', serviceAccount: 'sa', ports: [] }).locality,
    ).toBeUndefined();
  });

  it('rejects what is not a locality, in one sentence naming the flag', () => {
    for (const bad of ['', 'us-east//rack1', 'a/b/c/d', 'us east', '/zone']) {
      expect(() => parseLocality(bad), bad).toThrow(FlagError);
      expect(() => parseLocality(bad)).toThrow(/^--locality must be region\[\/zone\[\/subzone\]\]/);
    }
  });
});
