/**
 * XXH64, the 64-bit xxHash (https://github.com/Cyan4973/xxHash, spec in
 * doc/xxhash_spec.md), which Envoy uses for every consistent-hash decision:
 * request hash policies, ring hash points and Maglev permutations. Using the
 * same function is what makes a key land on the same endpoint here as in an
 * Envoy sidecar (or a gRPC proxyless client, which follows Envoy).
 *
 * Arithmetic is on BigInt truncated to 64 bits: correct first; a ring of the
 * default 1024 points builds in a few milliseconds.
 */

const MASK = 0xffff_ffff_ffff_ffffn;
const P1 = 0x9e37_79b1_85eb_ca87n;
const P2 = 0xc2b2_ae3d_27d4_eb4fn;
const P3 = 0x1656_67b1_9e37_79f9n;
const P4 = 0x85eb_ca77_c2b2_ae63n;
const P5 = 0x27d4_eb2f_1656_67c5n;

const encoder = new TextEncoder();

/** XXH64 of the UTF-8 bytes of `input` (or of the bytes themselves), with Envoy's default seed 0. */
export function xxHash64(input: string | Uint8Array, seed = 0n): bigint {
  const bytes = typeof input === 'string' ? encoder.encode(input) : input;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const len = bytes.length;
  let offset = 0;
  let h: bigint;

  if (len >= 32) {
    let v1 = (seed + P1 + P2) & MASK;
    let v2 = (seed + P2) & MASK;
    let v3 = seed & MASK;
    let v4 = (seed - P1) & MASK;
    for (const limit = len - 32; offset <= limit; offset += 32) {
      v1 = round(v1, view.getBigUint64(offset, true));
      v2 = round(v2, view.getBigUint64(offset + 8, true));
      v3 = round(v3, view.getBigUint64(offset + 16, true));
      v4 = round(v4, view.getBigUint64(offset + 24, true));
    }
    h = (rotl(v1, 1n) + rotl(v2, 7n) + rotl(v3, 12n) + rotl(v4, 18n)) & MASK;
    h = mergeRound(h, v1);
    h = mergeRound(h, v2);
    h = mergeRound(h, v3);
    h = mergeRound(h, v4);
  } else {
    h = (seed + P5) & MASK;
  }

  h = (h + BigInt(len)) & MASK;
  for (; offset + 8 <= len; offset += 8) {
    h ^= round(0n, view.getBigUint64(offset, true));
    h = (rotl(h, 27n) * P1 + P4) & MASK;
  }
  if (offset + 4 <= len) {
    h ^= (BigInt(view.getUint32(offset, true)) * P1) & MASK;
    h = (rotl(h, 23n) * P2 + P3) & MASK;
    offset += 4;
  }
  for (; offset < len; offset++) {
    h ^= (BigInt(bytes[offset]!) * P5) & MASK;
    h = (rotl(h, 11n) * P1) & MASK;
  }

  // Avalanche.
  h ^= h >> 33n;
  h = (h * P2) & MASK;
  h ^= h >> 29n;
  h = (h * P3) & MASK;
  h ^= h >> 32n;
  return h;
}

/** A 64-bit hash as Envoy's Hex::uint64ToHex writes it: 16 lower-case hex digits. */
export function hex64(hash: bigint): string {
  return hash.toString(16).padStart(16, '0');
}

function round(acc: bigint, lane: bigint): bigint {
  acc = (acc + lane * P2) & MASK;
  return (rotl(acc, 31n) * P1) & MASK;
}

function mergeRound(acc: bigint, v: bigint): bigint {
  acc ^= round(0n, v);
  return (acc * P1 + P4) & MASK;
}

function rotl(x: bigint, r: bigint): bigint {
  return ((x << r) | (x >> (64n - r))) & MASK;
}
