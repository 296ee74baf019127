import { describe, expect, it } from 'vitest';
import { compileHashPolicy, generatedCookie, type HashInput, requestHash } from '../src/http/hash-policy.js';
import { hex64, xxHash64 } from '../src/upstream/xxhash64.js';

/** A request as the hash policies read it. */
function input(
  parts: {
    headers?: Record<string, string[]>;
    cookie?: string;
    ip?: string;
    query?: Record<string, string>;
  } = {},
): HashInput & { cookies: string[] } {
  const cookies: string[] = [];
  return {
    cookies,
    header: (name) => parts.headers?.[name] ?? [],
    cookie: () => parts.cookie,
    sourceIp: () => parts.ip,
    query: (name) => parts.query?.[name],
    connection: () => ({ remote: '10.1.2.3:51000', local: '10.0.0.9:9080' }),
    setCookie: (c) => cookies.push(c),
  };
}

const rotl1 = (h: bigint) => ((h << 1n) | (h >> 63n)) & 0xffff_ffff_ffff_ffffn;

describe("request hash policies compute Envoy's 64-bit hash", () => {
  const header = compileHashPolicy({ header: { header_name: 'x-user' } }, 'hash_policy[0]');
  const ip = compileHashPolicy({ connection_properties: { source_ip: true } }, 'hash_policy[1]');
  const query = compileHashPolicy({ query_parameter: { name: 'user' } }, 'hash_policy[2]');

  it('hashes a header, the source IP and a query parameter with xxHash64 of the value', () => {
    expect(requestHash([header], input({ headers: { 'x-user': ['alice'] } }))).toBe(xxHash64('alice'));
    expect(requestHash([ip], input({ ip: '10.1.2.3' }))).toBe(xxHash64('10.1.2.3'));
    expect(requestHash([query], input({ query: { user: 'bob' } }))).toBe(xxHash64('bob'));
    expect(requestHash([header], input())).toBeUndefined();
  });

  it('hashes repeated header values in sorted order, so their order does not matter', () => {
    const ab = requestHash([header], input({ headers: { 'x-user': ['b', 'a'] } }));
    expect(ab).toBe(requestHash([header], input({ headers: { 'x-user': ['a', 'b'] } })));
    expect(ab).toBe(xxHash64('ab'));
  });

  it('combines policies by rotating the running hash left one bit and XORing the next, stopping at a terminal one', () => {
    const both = input({ headers: { 'x-user': ['alice'] }, ip: '10.1.2.3' });
    expect(requestHash([header, ip], both)).toBe(rotl1(xxHash64('alice')) ^ xxHash64('10.1.2.3'));
    // The same policy twice does not cancel itself out.
    expect(requestHash([header, header], both)).not.toBe(0n);
    const terminal = compileHashPolicy(
      { header: { header_name: 'x-user' }, terminal: true },
      'hash_policy[0]',
    );
    expect(requestHash([terminal, ip], both)).toBe(xxHash64('alice'));
    // A terminal policy that produced nothing does not stop the ones after it.
    expect(requestHash([terminal, ip], input({ ip: '10.1.2.3' }))).toBe(xxHash64('10.1.2.3'));
  });

  it('generates a missing session cookie from the connection ends, as Envoy does, and hashes its value', () => {
    const cookie = compileHashPolicy(
      { cookie: { name: 'session', ttl: '60s', path: '/' } },
      'hash_policy[0]',
    );
    const req = input();
    const hash = requestHash([cookie], req);
    const value = hex64(xxHash64('10.1.2.3:5100010.0.0.9:9080'));
    expect(generatedCookie({ remote: '10.1.2.3:51000', local: '10.0.0.9:9080' })).toBe(value);
    expect(req.cookies).toEqual([`session="${value}"; Max-Age=60; Path=/; HttpOnly`]);
    expect(hash).toBe(xxHash64(value));
    // Coming back with it, the request hashes the same and no new cookie is set.
    const back = input({ cookie: value });
    expect(requestHash([cookie], back)).toBe(hash);
    expect(back.cookies).toEqual([]);
    // Without a TTL no cookie is made: no hash.
    const plain = compileHashPolicy({ cookie: { name: 'session' } }, 'hash_policy[0]');
    expect(requestHash([plain], input())).toBeUndefined();
  });
});
