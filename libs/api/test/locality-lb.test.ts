import { describe, expect, it } from 'vitest';
import { errorsOf, issuesOf, warningsOf } from './helpers.js';

const LB = 'spec.trafficPolicy.loadBalancer';
const OUTLIER = { consecutive5xxErrors: 1 };

function lb(loadBalancer: unknown, outlierDetection: unknown = OUTLIER) {
  return issuesOf('DestinationRule', { host: 'hw', trafficPolicy: { loadBalancer, outlierDetection } });
}

/** DestinationRule locality load balancing and warmup, rejected where Istio's validation rejects them. */
describe('DestinationRule localityLbSetting and warmup', () => {
  it('accepts distribute, failover, failoverPriority and warmup as Istio documents them', () => {
    expect(
      lb({
        localityLbSetting: {
          enabled: true,
          distribute: [
            { from: 'us-west/zone1/*', to: { 'us-west/zone1/*': 80, 'us-west/zone2/*': 20 } },
            { from: 'us-west/zone2/*', to: { 'us-west/zone1/*': 20, 'us-west/zone2/*': 80 } },
          ],
        },
        warmup: { duration: '30s', minimumPercent: 5, aggression: 2 },
      }),
    ).toEqual([]);
    expect(
      lb({
        localityLbSetting: {
          failover: [{ from: 'us-east', to: 'eu-west' }],
          failoverPriority: ['topology.istio.io/network', 'version=v1'],
        },
        simple: 'LEAST_REQUEST',
        warmupDurationSecs: '10s',
      }),
    ).toEqual([]);
  });

  it('rejects distribute weights that do not add up to 100, or are out of range', () => {
    expect(
      lb({ localityLbSetting: { distribute: [{ from: 'a/*', to: { 'a/*': 60, 'b/*': 30 } }] } }),
    ).toEqual([
      {
        severity: 'error',
        path: `${LB}.localityLbSetting.distribute[0].to`,
        message: 'locality weights must add up to 100, got 90',
      },
    ]);
    expect(
      errorsOf('DestinationRule', {
        host: 'hw',
        trafficPolicy: {
          loadBalancer: { localityLbSetting: { distribute: [{ from: 'a', to: { a: 0, b: 100 } }] } },
        },
      }).map((e) => e.message),
    ).toContain('weight must be between 1 and 100, got 0');
  });

  it('rejects overlapping and malformed localities', () => {
    const messages = (setting: unknown) =>
      lb({ localityLbSetting: setting }).map((i) => `${i.path}: ${i.message}`);
    expect(
      messages({ distribute: [{ from: 'us-east/*', to: { 'us-east/*': 50, 'us-east/zone1': 50 } }] }),
    ).toEqual([
      `${LB}.localityLbSetting.distribute[0].to: "us-east/zone1" overlaps a locality listed before it`,
    ]);
    expect(
      messages({
        distribute: [
          { from: 'us-east/zone1', to: { 'us-east/*': 100 } },
          { from: 'us-east', to: { 'us-east/*': 100 } },
        ],
      }),
    ).toEqual([`${LB}.localityLbSetting.distribute: "us-east" overlaps a locality listed before it`]);
    expect(messages({ distribute: [{ from: '*/zone1', to: { '*': 100 } }] })).toEqual([
      `${LB}.localityLbSetting.distribute[0].from: "*/zone1": "*" may only be the last part, on its own`,
    ]);
    expect(messages({ distribute: [{ from: 'a//b', to: { a: 100 } }] })).toEqual([
      `${LB}.localityLbSetting.distribute[0].from: "a//b" has an empty part`,
    ]);
  });

  it('rejects the failover combinations Istio rejects', () => {
    const messages = (setting: unknown) =>
      lb({ localityLbSetting: setting }).map((i) => `${i.path}: ${i.message}`);
    expect(
      messages({ distribute: [{ from: 'a', to: { a: 100 } }], failover: [{ from: 'a', to: 'b' }] }),
    ).toEqual([`${LB}.localityLbSetting: only one of distribute or failover may be set`]);
    expect(messages({ failover: [{ from: 'us-east', to: 'us-east' }] })).toEqual([
      `${LB}.localityLbSetting.failover[0]: from and to must be different regions`,
    ]);
    expect(messages({ failover: [{ from: 'us-east/zone1', to: 'eu-west' }] })).toEqual([
      `${LB}.localityLbSetting.failover[0].from: failover names regions only (no zone)`,
    ]);
    expect(messages({ failover: [{ from: 'us-east', to: 'eu-*' }] })).toEqual([
      `${LB}.localityLbSetting.failover[0].to: failover regions cannot contain "*"`,
    ]);
    expect(
      messages({
        failover: [{ from: 'us-east', to: 'eu-west' }],
        failoverPriority: ['topology.kubernetes.io/region'],
      }),
    ).toEqual([
      `${LB}.localityLbSetting.failover[0]: failover cannot be combined with topology labels in failoverPriority`,
    ]);
    // Failover without outlier detection is accepted with Istio's warning: it would never happen.
    expect(
      warningsOf('DestinationRule', {
        host: 'hw',
        trafficPolicy: { loadBalancer: { localityLbSetting: { failoverPriority: ['version'] } } },
      }),
    ).toEqual([
      {
        severity: 'warning',
        path: `${LB}.localityLbSetting`,
        message: 'locality failover only happens with outlierDetection set in the same traffic policy',
      },
    ]);
  });

  it('rejects bad warmup settings', () => {
    const messages = (loadBalancer: unknown) => lb(loadBalancer).map((i) => `${i.path}: ${i.message}`);
    expect(messages({ warmup: { duration: '10s' }, warmupDurationSecs: '10s' })).toEqual([
      `${LB}: only one of warmup or warmupDurationSecs may be set`,
    ]);
    expect(messages({ warmup: { minimumPercent: 10 } })).toEqual([
      `${LB}.warmup.duration: required field "duration" is missing`,
    ]);
    expect(messages({ warmup: { duration: '10s', aggression: 0.5 } })[0]).toMatch(
      /^spec\.trafficPolicy\.loadBalancer\.warmup\.aggression: /,
    );
    expect(messages({ warmup: { duration: '10s', minimumPercent: 120 } })[0]).toMatch(
      /^spec\.trafficPolicy\.loadBalancer\.warmup\.minimumPercent: /,
    );
  });

  it('rejects retryRemoteLocalities on retries that are switched off', () => {
    const vs = (retries: unknown) =>
      errorsOf('VirtualService', {
        hosts: ['hw'],
        http: [{ route: [{ destination: { host: 'hw' } }], retries }],
      });
    expect(vs({ attempts: 3, retryRemoteLocalities: true })).toEqual([]);
    expect(vs({ attempts: 0, retryRemoteLocalities: true }).map((e) => e.path)).toEqual([
      'spec.http[0].retries.attempts',
    ]);
  });
});
