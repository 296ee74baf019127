import fs from 'node:fs';
import path from 'node:path';
import { generateTokenSecret, mintWorkloadToken } from '@mizzen/pki';
import { CliError } from '../errors.js';

/**
 * Workload identity for the local mesh. In Kubernetes a sidecar proves its
 * service account to the CA with the pod's projected token; locally
 * `mizzen up` plays the kubelet: it keeps the key citadel checks tokens
 * with and hands each proxy a token for its own service account, in a file
 * only this user can read.
 */
export class LocalIdentities {
  private constructor(
    private readonly secret: string,
    private readonly tokenDir: string,
  ) {}

  /** Reads the token key (creating it on first use, 0600) and prepares a fresh token directory. */
  static open(keyFile: string, tokenDir: string): LocalIdentities {
    fs.mkdirSync(path.dirname(keyFile), { recursive: true, mode: 0o700 });
    try {
      fs.writeFileSync(keyFile, `${generateTokenSecret()}\n`, { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST')
        throw new CliError(`cannot create the workload token key ${keyFile}: ${(err as Error).message}`);
    }
    const secret = fs.readFileSync(keyFile, 'utf8').trim();
    // Tokens from an earlier run are worthless to anyone but tidy to remove.
    fs.rmSync(tokenDir, { recursive: true, force: true });
    fs.mkdirSync(tokenDir, { recursive: true, mode: 0o700 });
    return new LocalIdentities(secret, tokenDir);
  }

  /**
   * Writes a token for `namespace/serviceAccount` and returns its path. It
   * lives as long as a mesh session reasonably does; the proxy re-reads it on
   * every certificate request, as Istio's agent re-reads a projected token.
   */
  async tokenFile(name: string, namespace: string, serviceAccount: string): Promise<string> {
    const token = await mintWorkloadToken(this.secret, { namespace, serviceAccount, ttlSeconds: 7 * 86_400 });
    const file = path.join(this.tokenDir, `${name}.jwt`);
    fs.writeFileSync(file, token, { mode: 0o600 });
    return file;
  }
}
