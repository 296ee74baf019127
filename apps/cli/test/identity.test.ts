import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { TokenError, verifyWorkloadToken } from '@mizzen/pki';
import { afterEach, describe, expect, it } from 'vitest';
import { LocalIdentities } from '../src/local/identity.js';

/**
 * The local mesh's stand-in for the kubelet's projected tokens: a token per
 * proxy, checked here exactly as citadel checks it (verifyWorkloadToken with
 * the shared key), short-lived and renewed while `mizzen up` runs.
 */
const dirs: string[] = [];
const opened: LocalIdentities[] = [];

function setup(ttlSeconds?: number) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-identity-'));
  dirs.push(dir);
  const keyFile = path.join(dir, 'ca', 'token-key');
  const tokenDir = path.join(dir, 'run', 'tokens');
  const open = () => {
    const ids = LocalIdentities.open(keyFile, tokenDir, ttlSeconds);
    opened.push(ids);
    return ids;
  };
  return { keyFile, tokenDir, open, key: () => fs.readFileSync(keyFile, 'utf8').trim() };
}

afterEach(() => {
  for (const ids of opened.splice(0)) ids.stop();
  for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
});

describe('local workload tokens (mizzen up)', () => {
  it('are an hour by default, for the proxy’s own service account, readable by this user only', async () => {
    const s = setup();
    const file = await s.open().tokenFile('reviews-v1', 'default', 'bookinfo-reviews');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const token = await verifyWorkloadToken(s.key(), fs.readFileSync(file, 'utf8'));
    expect(token).toMatchObject({ namespace: 'default', serviceAccount: 'bookinfo-reviews' });
    const left = token.expiresAt.getTime() - Date.now();
    expect(left).toBeGreaterThan(3590_000);
    expect(left).toBeLessThanOrEqual(3600_000);
  });

  it('are renewed at half their life while the mesh runs, so a proxy always finds a valid one', async () => {
    const s = setup(4);
    const ids = s.open();
    const file = await ids.tokenFile('reviews-v1', 'default', 'bookinfo-reviews');
    const first = fs.readFileSync(file, 'utf8');
    const firstExpiry = (await verifyWorkloadToken(s.key(), first)).expiresAt;
    ids.startRenewing();
    let renewed = first;
    for (let i = 0; i < 60 && renewed === first; i++) {
      await sleep(100);
      renewed = fs.readFileSync(file, 'utf8');
    }
    expect(renewed).not.toBe(first);
    const second = await verifyWorkloadToken(s.key(), renewed);
    expect(second.serviceAccount).toBe('bookinfo-reviews');
    expect(second.expiresAt.getTime()).toBeGreaterThan(firstExpiry.getTime());
    // Once the first token has expired (past citadel's clock tolerance), the file's token still works.
    const later = new Date(firstExpiry.getTime() + 6_000);
    await expect(verifyWorkloadToken(s.key(), first, { now: later })).rejects.toThrow(TokenError);
    ids.stop();
    const stopped = fs.readFileSync(file, 'utf8');
    await sleep(2_500);
    expect(fs.readFileSync(file, 'utf8')).toBe(stopped);
  });

  it('of an earlier run are deleted: the key persists, so they would stay valid until they expire', async () => {
    const s = setup();
    const old = await s.open().tokenFile('reviews-v1', 'default', 'bookinfo-reviews');
    const key = s.key();
    const again = s.open();
    expect(s.key()).toBe(key);
    expect(fs.existsSync(old)).toBe(false);
    expect(fs.readdirSync(s.tokenDir)).toEqual([]);
    await again.tokenFile('ratings-v1', 'default', 'bookinfo-ratings');
    expect(fs.readdirSync(s.tokenDir)).toEqual(['ratings-v1.jwt']);
  });
});
