/** The units a limit is expressed in, as Envoy's `envoy.type.v3.RateLimitUnit` names them. */
export type RateLimitUnit = 'SECOND' | 'MINUTE' | 'HOUR' | 'DAY';

const UNIT_MS: Record<RateLimitUnit, number> = {
  SECOND: 1_000,
  MINUTE: 60_000,
  HOUR: 3_600_000,
  DAY: 86_400_000,
};

export function isRateLimitUnit(value: unknown): value is RateLimitUnit {
  return typeof value === 'string' && Object.hasOwn(UNIT_MS, value);
}

/** The length of one unit in milliseconds. */
export function unitMs(unit: RateLimitUnit): number {
  return UNIT_MS[unit];
}

/** `N requests per unit`: the rate a counter allows, with a burst of N. */
export interface RateLimit {
  readonly requests: number;
  readonly unit: RateLimitUnit;
}
