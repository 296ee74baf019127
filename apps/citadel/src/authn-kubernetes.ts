import fsp from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { CA_AUDIENCE, parseServiceAccountUsername } from '@mizzen/pki';
import { AuthError, type Authenticator, type Caller } from './authn.js';

export interface KubernetesAuthOptions {
  /** The API server, e.g. https://kubernetes.default.svc. */
  apiUrl: string;
  /** citadel's own service-account token (re-read on every review: projected tokens rotate). */
  tokenFile: string;
  /** PEM bundle the API server's certificate chains to; the system roots when absent. */
  ca?: string;
  /** Audiences the workload token must carry; default Istio's `istio-ca`. */
  audiences?: string[];
  timeoutMs?: number;
}

/** The parts of an authentication.k8s.io/v1 TokenReview citadel reads. */
interface TokenReview {
  status?: {
    authenticated?: boolean;
    error?: string;
    audiences?: string[];
    user?: { username?: string; groups?: string[] };
  };
  message?: string;
}

const REVIEW_PATH = '/apis/authentication.k8s.io/v1/tokenreviews';
const MAX_RESPONSE_BYTES = 1024 * 1024;
const SERVICE_ACCOUNTS_GROUP = 'system:serviceaccounts';

function trim(text: string): string {
  return text.length > 300 ? `${text.slice(0, 300)}…` : text;
}

/**
 * Kubernetes mode: the workload's service-account token is checked by the API
 * server itself with a TokenReview (audience `istio-ca`), as istiod does; the
 * identity is the reviewed user name `system:serviceaccount:<ns>:<sa>`.
 */
export class KubernetesTokenReviewAuthenticator implements Authenticator {
  readonly kind = 'kubernetes';
  private readonly audiences: string[];
  private readonly agent: http.Agent;

  constructor(private readonly options: KubernetesAuthOptions) {
    this.audiences = options.audiences ?? [CA_AUDIENCE];
    this.agent = options.apiUrl.startsWith('https:')
      ? new https.Agent({ keepAlive: true, ...(options.ca ? { ca: options.ca } : {}) })
      : new http.Agent({ keepAlive: true });
  }

  close(): void {
    this.agent.destroy();
  }

  async authenticate(token: string): Promise<Caller> {
    let ownToken: string;
    try {
      ownToken = (await fsp.readFile(this.options.tokenFile, 'utf8')).trim();
    } catch (err) {
      throw new AuthError(
        'UNAVAILABLE',
        `citadel cannot read its Kubernetes token ${this.options.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
      );
    }
    const body = JSON.stringify({
      apiVersion: 'authentication.k8s.io/v1',
      kind: 'TokenReview',
      spec: { token, audiences: this.audiences },
    });
    const { status, text } = await this.post(body, ownToken);
    let review: TokenReview;
    try {
      review = JSON.parse(text) as TokenReview;
    } catch {
      review = {};
    }
    if (status === 401 || status === 403) {
      throw new AuthError(
        'UNAVAILABLE',
        `the Kubernetes API refused citadel's TokenReview (HTTP ${status}${review.message ? `: ${trim(review.message)}` : ''})`,
      );
    }
    if (status < 200 || status > 299 || !review.status) {
      throw new AuthError('UNAVAILABLE', `the Kubernetes API answered the TokenReview with HTTP ${status}`);
    }
    const s = review.status;
    if (s.error)
      throw new AuthError('UNAUTHENTICATED', `token rejected by the Kubernetes API: ${trim(s.error)}`);
    if (!s.authenticated)
      throw new AuthError('UNAUTHENTICATED', 'token rejected by the Kubernetes API: not authenticated');
    if (Array.isArray(s.audiences) && !s.audiences.some((a) => this.audiences.includes(a))) {
      throw new AuthError(
        'UNAUTHENTICATED',
        `token audiences [${s.audiences.join(', ')}] do not include ${this.audiences.join(' or ')}`,
      );
    }
    const username = s.user?.username ?? '';
    let caller: Caller;
    try {
      caller = parseServiceAccountUsername(username);
    } catch {
      throw new AuthError(
        'PERMISSION_DENIED',
        `${JSON.stringify(trim(username))} is not a service account; only workloads get certificates`,
      );
    }
    if (Array.isArray(s.user?.groups) && !s.user.groups.includes(SERVICE_ACCOUNTS_GROUP)) {
      throw new AuthError('PERMISSION_DENIED', `${username} is not in the ${SERVICE_ACCOUNTS_GROUP} group`);
    }
    return caller;
  }

  private post(body: string, bearer: string): Promise<{ status: number; text: string }> {
    const url = new URL(`${this.options.apiUrl}${REVIEW_PATH}`);
    const transport = url.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = transport.request(
        url,
        {
          method: 'POST',
          agent: this.agent,
          headers: {
            authorization: `Bearer ${bearer}`,
            'content-type': 'application/json',
            accept: 'application/json',
            'content-length': Buffer.byteLength(body),
          },
          timeout: this.options.timeoutMs ?? 5000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size > MAX_RESPONSE_BYTES) {
              req.destroy(new Error('response too large'));
              return;
            }
            chunks.push(chunk);
          });
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
          );
          res.on('error', (err) =>
            reject(new AuthError('UNAVAILABLE', `the Kubernetes API connection failed: ${err.message}`)),
          );
        },
      );
      req.on('timeout', () =>
        req.destroy(new Error(`no answer within ${this.options.timeoutMs ?? 5000} ms`)),
      );
      req.on('error', (err: NodeJS.ErrnoException) =>
        reject(
          new AuthError(
            'UNAVAILABLE',
            `cannot reach the Kubernetes API at ${this.options.apiUrl}: ${err.code ?? err.message}`,
          ),
        ),
      );
      req.end(body);
    });
  }
}
