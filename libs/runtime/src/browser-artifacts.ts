import fs from 'node:fs';
import path from 'node:path';

/** Bound on the console lines kept per page (a chatty page must not grow a test's memory). */
const MAX_LINES = 2000;

/**
 * What a browser test keeps when it fails: a screenshot of the page as it
 * was and everything the page logged (console messages, uncaught errors),
 * as `<dir>/<test name>.png` and `<dir>/<test name>.console.log`. The tests
 * feed it the page's console; it knows nothing of the browser driver.
 */
export class BrowserFailureRecorder {
  private lines: string[] = [];

  constructor(readonly dir: string) {}

  /** Forgets a previous run's failures (call before the suite's first test). */
  reset(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
    this.lines = [];
  }

  /** Records one line the page logged (`[console.error] …`, `[pageerror] …`). */
  log(kind: string, text: string): void {
    this.lines.push(`${new Date().toISOString()} [${kind}] ${text}`);
    if (this.lines.length > MAX_LINES) this.lines = this.lines.slice(-MAX_LINES / 2);
  }

  /**
   * Saves a failed test's screenshot (through `screenshot`, given the path)
   * and the console so far; returns where they are. A screenshot that cannot
   * be taken (the browser gone) is noted in the console file instead.
   */
  async saveFailure(testName: string, screenshot: (file: string) => Promise<unknown>): Promise<string[]> {
    fs.mkdirSync(this.dir, { recursive: true });
    const base = path.join(this.dir, testName.replace(/[^a-zA-Z0-9._-]+/g, '-').slice(0, 120));
    const shot = `${base}.png`;
    const log = `${base}.console.log`;
    const saved: string[] = [];
    try {
      await screenshot(shot);
      saved.push(shot);
    } catch (err) {
      this.log('artifacts', `no screenshot: ${(err as Error).message}`);
    }
    fs.writeFileSync(log, this.lines.length ? `${this.lines.join('\n')}\n` : '(the page logged nothing)\n');
    saved.push(log);
    return saved;
  }
}
