import fs from 'node:fs';

/** How often a watched file is checked for a change (rotation, or a missing file appearing). */
const POLL_MS = 1_000;

export type FileRead = { text: string } | { problem: string };

/**
 * PEM files read on demand and then watched: a change (rotation, a file
 * appearing or vanishing) is read again and reported, so the TLS contexts
 * using it are rebuilt for the next handshake. A file that cannot be read is
 * a problem with a reason, not an error: only the servers using it stay
 * closed, and they open once it can be read.
 */
export class WatchedFiles {
  private readonly files = new Map<string, FileRead>();
  private readonly listeners = new Set<(path: string) => void>();

  read(path: string): FileRead {
    let found = this.files.get(path);
    if (!found) {
      found = readPem(path);
      this.files.set(path, found);
      fs.watchFile(path, { interval: POLL_MS, persistent: false }, (now, before) => {
        if (now.mtimeMs === before.mtimeMs && now.size === before.size && now.ino === before.ino) return;
        this.files.set(path, readPem(path));
        for (const l of this.listeners) l(path);
      });
    }
    return found;
  }

  onChange(listener: (path: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    for (const path of this.files.keys()) fs.unwatchFile(path);
    this.files.clear();
  }
}

function readPem(path: string): FileRead {
  try {
    const text = fs.readFileSync(path, 'utf8');
    if (!text.includes('-----BEGIN ')) return { problem: `${path} is not PEM` };
    return { text };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { problem: `cannot read ${path}: ${e.code ?? e.message}` };
  }
}
