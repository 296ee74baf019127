import fs from 'node:fs';
import path from 'node:path';
import { generateTokenSecret, mintWorkloadToken } from '@mizzen/pki';
import { CliError } from '../errors.js';

/** As a kubelet's projected service-account token: an hour, renewed well before it runs out. */
export const LOCAL_TOKEN_TTL_SECONDS = 3600;

interface TokenSubject {
  file: string;
  namespace: string;
  serviceAccount: string;
}

/**
 * Workload identity for the local mesh. In Kubernetes a sidecar proves its
 * service account to the CA with the pod's projected token, which the
 * kubelet keeps renewing; locally `mizzen up` plays the kubelet: it keeps the
 * key citadel checks tokens with and hands each proxy a short-lived token for
 * its own service account, in a file only this user can read, rewritten with
 * a fresh token at half its life for as long as the mesh runs (the proxy
 * re-reads the file at every certificate request).
 */
export class LocalIdentities {
  private readonly subjects = new Map<string, TokenSubject>();
  private timer?: NodeJS.Timeout;

  private constructor(
    private readonly secret: string,
    private readonly tokenDir: string,
    private readonly ttlSeconds: number,
  ) {}

  /**
   * Reads the token key (creating it on first use, 0600) and prepares an
   * empty token directory. The key persists across runs (as a cluster's
   * does), so an earlier run's tokens stay valid until they expire: they are
   * deleted here, and every token is short-lived.
   */
  static open(keyFile: string, tokenDir: string, ttlSeconds = LOCAL_TOKEN_TTL_SECONDS): LocalIdentities {
    fs.mkdirSync(path.dirname(keyFile), { recursive: true, mode: 0o700 });
    try {
      fs.writeFileSync(keyFile, `${generateTokenSecret()}\n`, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new CliError(`cannot create the workload token key ${keyFile}: ${(err as Error).message}`);
    }
    const secret = fs.readFileSync(keyFile, 'utf8').trim();
    fs.rmSync(tokenDir, { recursive: true, force: true });
    fs.mkdirSync(tokenDir, { recursive: true, mode: 0o700 });
    return new LocalIdentities(secret, tokenDir, ttlSeconds);
  }

  /** Writes a token for `namespace/serviceAccount` and returns its path; `startRenewing` keeps it fresh. */
  async tokenFile(name: string, namespace: string, serviceAccount: string): Promise<string> {
    const subject = { file: path.join(this.tokenDir, `${name}.jwt`), namespace, serviceAccount };
    this.subjects.set(name, subject);
    await this.write(subject);
    return subject.file;
  }

  /**
   * Rewrites every token at half its life until `stop()`. A failed write is
   * reported and retried at the next round, while the previous token is still
   * good for the other half.
   */
  startRenewing(onError: (message: string) => void = () => {}): void {
    if (this.timer) return;
    this.timer = setInterval(
      () => {
        void Promise.all([...this.subjects.values()].map((s) => this.write(s))).catch((err: Error) =>
          onError(`could not renew the workload tokens in ${this.tokenDir}: ${err.message}`),
        );
      },
      (this.ttlSeconds * 1000) / 2,
    );
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** A fresh token, written aside and renamed into place: a proxy reading it never sees half a token. */
  private async write(subject: TokenSubject): Promise<void> {
    const token = await mintWorkloadToken(this.secret, {
      namespace: subject.namespace,
      serviceAccount: subject.serviceAccount,
      ttlSeconds: this.ttlSeconds,
    });
    const tmp = `${subject.file}.tmp`;
    fs.writeFileSync(tmp, token, { mode: 0o600 });
    fs.renameSync(tmp, subject.file);
  }
}
