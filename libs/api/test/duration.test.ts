import { describe, expect, it } from 'vitest';
import { isValidDuration, parseDuration } from '../src/index.js';

describe('parseDuration', () => {
  it.each([
    ['1.5s', 1500],
    ['100ms', 100],
    ['1m', 60_000],
    ['1h30m', 5_400_000],
    ['2h45m30.5s', 9_930_500],
    ['250us', 0.25],
    ['250µs', 0.25],
    ['1000000ns', 1],
    ['0s', 0],
    ['0', 0],
    ['+5s', 5000],
    ['.5s', 500],
    ['1.000340012s', 1000.340012],
    ['15m', 900_000],
    ['7200s', 7_200_000],
  ])('%s = %d ms', (input, ms) => {
    expect(parseDuration(input)).toBeCloseTo(ms, 9);
    expect(isValidDuration(input)).toBe(true);
  });

  it.each([
    ['', 'invalid duration "": empty; use a number with a unit, such as 100ms, 1.5s, 1m or 1h30m'],
    [
      '10',
      'invalid duration "10": missing or unknown unit in "10"; use a number with a unit, such as 100ms, 1.5s, 1m or 1h30m',
    ],
    [
      '5d',
      'invalid duration "5d": missing or unknown unit in "5d"; use a number with a unit, such as 100ms, 1.5s, 1m or 1h30m',
    ],
    ['s', 'invalid duration "s": unexpected "s"; use a number with a unit, such as 100ms, 1.5s, 1m or 1h30m'],
    [
      '1s 2s',
      'invalid duration "1s 2s": unexpected " 2s"; use a number with a unit, such as 100ms, 1.5s, 1m or 1h30m',
    ],
    ['-1s', 'invalid duration "-1s": durations cannot be negative'],
    ['+', 'invalid duration "+": use a number with a unit, such as 100ms, 1.5s, 1m or 1h30m'],
    ['99999999999h', 'invalid duration "99999999999h": too large (at most 10000 years)'],
  ])('rejects %j with a clear message', (input, message) => {
    expect(() => parseDuration(input)).toThrow(new Error(message));
    expect(isValidDuration(input)).toBe(false);
  });

  it('rejects a non-string', () => {
    expect(() => parseDuration(5 as unknown as string)).toThrow(
      'invalid duration 5: expected a string such as "1.5s"',
    );
  });
});
