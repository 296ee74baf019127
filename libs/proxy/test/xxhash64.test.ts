import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import xxhash from 'xxhash-wasm';
import { hex64, xxHash64 } from '../src/upstream/xxhash64.js';

describe('xxHash64 (the hash Envoy uses for consistent hashing)', () => {
  it("gives the reference implementation's published values", () => {
    // From xxHash's own sanity checks and Envoy's hash_test.cc.
    expect(xxHash64('')).toBe(0xef46db3751d8e999n);
    expect(xxHash64('a')).toBe(0xd24ec4f1a98c6e5bn);
    expect(xxHash64('abc')).toBe(0x44bc2cf5ad770999n);
    expect(xxHash64('foo')).toBe(3728699739546630719n);
  });

  it('agrees with the C reference (compiled to WebAssembly) for every length, lane and tail, and seeds', async () => {
    const { h64Raw } = await xxhash();
    for (let len = 0; len < 140; len++) {
      for (const seed of [0n, 1n, 0xffff_ffff_ffff_ffffn]) {
        const bytes = randomBytes(len);
        expect(xxHash64(bytes, seed), `length ${len}, seed ${seed}`).toBe(h64Raw(bytes, seed));
      }
    }
    // Strings are hashed as their UTF-8 bytes, as Envoy hashes header values.
    expect(xxHash64('grüße/✓')).toBe(h64Raw(new TextEncoder().encode('grüße/✓'), 0n));
  });

  it('writes a hash as 16 hex digits, as Envoy names a generated session cookie', () => {
    expect(hex64(0x1an)).toBe('000000000000001a');
    expect(hex64(0xef46db3751d8e999n)).toBe('ef46db3751d8e999');
  });
});
