import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BrowserFailureRecorder } from '../src/browser-artifacts.js';

describe('a failed browser test’s artifacts', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mizzen-artifacts-'));
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('keeps the screenshot and everything the page logged, named after the test, and forgets them on reset', async () => {
    const recorder = new BrowserFailureRecorder(path.join(dir, 'failures'));
    recorder.log('console.error', 'GET /api/graph 500');
    recorder.log('pageerror', 'cy is undefined');
    const saved = await recorder.saveFailure('draws the graph: edges/rates', async (file) =>
      fs.writeFileSync(file, 'png bytes'),
    );
    expect(saved.map((f) => path.basename(f))).toEqual([
      'draws-the-graph-edges-rates.png',
      'draws-the-graph-edges-rates.console.log',
    ]);
    expect(fs.readFileSync(saved[0]!, 'utf8')).toBe('png bytes');
    expect(fs.readFileSync(saved[1]!, 'utf8')).toMatch(
      /\[console\.error\] GET \/api\/graph 500\n.*\[pageerror\] cy is undefined\n$/,
    );
    recorder.reset();
    expect(fs.existsSync(recorder.dir)).toBe(false);
  });

  it('still keeps the console when the screenshot cannot be taken (the browser gone)', async () => {
    const recorder = new BrowserFailureRecorder(path.join(dir, 'gone'));
    const saved = await recorder.saveFailure('t', async () => {
      throw new Error('Target page, context or browser has been closed');
    });
    expect(saved).toEqual([path.join(dir, 'gone', 't.console.log')]);
    expect(fs.readFileSync(saved[0]!, 'utf8')).toMatch(
      /no screenshot: Target page, context or browser has been closed/,
    );
  });
});
