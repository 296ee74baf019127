import fsp from 'node:fs/promises';
import path from 'node:path';
import { generateTokenSecret, TokenError, verifyWorkloadToken } from '@mizzen/pki';
import type { Logger } from '@mizzen/runtime';
import { AuthError, type Authenticator, type Caller } from './authn.js';

/** A `--token-key` file citadel cannot use; the message names the file. */
export class TokenKeyError extends Error {}

/**
 * Reads the HS256 secret local bootstrap tokens are signed with, creating it
 * (mode 0600, 32 random bytes) when absent so `mizzen up` and citadel share it.
 */
export async function loadTokenKey(file: string, logger: Logger): Promise<string> {
  await fsp.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  try {
    await fsp.writeFile(file, `${generateTokenSecret()}\n`, { mode: 0o600, flag: 'wx' });
    logger.info({ file }, 'created the workload token key');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new TokenKeyError(`cannot create --token-key ${file}: ${(err as Error).message}`);
    }
  }
  let secret: string;
  try {
    const stat = await fsp.stat(file);
    if ((stat.mode & 0o077) !== 0) {
      logger.warn(
        { file, mode: (stat.mode & 0o777).toString(8) },
        'the token key file is readable by others; chmod 600 it',
      );
    }
    secret = (await fsp.readFile(file, 'utf8')).trim();
  } catch (err) {
    throw new TokenKeyError(`cannot read --token-key ${file}: ${(err as Error).message}`);
  }
  if (Buffer.byteLength(secret) < 32)
    throw new TokenKeyError(`--token-key ${file}: the key must be at least 32 bytes`);
  return secret;
}

/** Local mode: tokens minted by `mintWorkloadToken` with the shared secret prove a service account. */
export class LocalTokenAuthenticator implements Authenticator {
  readonly kind = 'local-token';

  constructor(private readonly secret: string) {}

  async authenticate(token: string): Promise<Caller> {
    try {
      const { namespace, serviceAccount } = await verifyWorkloadToken(this.secret, token);
      return { namespace, serviceAccount };
    } catch (err) {
      if (err instanceof TokenError) {
        throw new AuthError(
          err.reason === 'invalid-subject' ? 'PERMISSION_DENIED' : 'UNAUTHENTICATED',
          `token rejected: ${err.message}`,
        );
      }
      throw err;
    }
  }
}
