import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';

describe('createLogger', () => {
  it('writes one JSON line per event carrying the component and level names', async () => {
    const out = new PassThrough();
    const chunks: string[] = [];
    out.on('data', (c) => chunks.push(String(c)));
    const log = createLogger('pilot', { destination: out, level: 'info' });
    log.info({ proxies: 2 }, 'pushed');
    log.debug('hidden at info');
    await new Promise((r) => setImmediate(r));
    const lines = chunks
      .join('')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ component: 'pilot', level: 'info', msg: 'pushed', proxies: 2 });
    expect(typeof lines[0].time).toBe('string');
  });
});
