import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { certificateInfo } from '@mizzen/pki';
import { freePort } from '@mizzen/runtime';
import { afterEach, describe, expect, it } from 'vitest';
import { KubernetesTokenReviewAuthenticator } from '../src/authn-kubernetes.js';
import { cleanup, enroll, onCleanup, startCitadel, tempDir } from './helpers.js';

afterEach(cleanup);

const CITADEL_TOKEN = 'citadel-own-service-account-token';

interface KnownToken {
  username: string;
  groups: string[];
  audiences: string[];
}

/**
 * A faithful stand-in for the Kubernetes API server's TokenReview endpoint —
 * a fake, because no cluster runs in this environment. It speaks the real
 * authentication.k8s.io/v1 JSON: it requires the caller's own bearer token,
 * answers 201 with `status.authenticated/user/audiences`, and, like the real
 * API server, refuses a token whose audiences do not meet the requested ones
 * with `authenticated: false` and an `error`.
 */
async function fakeKubernetesApi(tokens: Record<string, KnownToken>) {
  const reviews: { authorization?: string; body: Record<string, unknown> }[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      };
      if (req.method !== 'POST' || req.url !== '/apis/authentication.k8s.io/v1/tokenreviews') {
        send(404, { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'NotFound', code: 404 });
        return;
      }
      if (req.headers.authorization !== `Bearer ${CITADEL_TOKEN}`) {
        send(401, {
          kind: 'Status',
          apiVersion: 'v1',
          status: 'Failure',
          message: 'Unauthorized',
          reason: 'Unauthorized',
          code: 401,
        });
        return;
      }
      const body = JSON.parse(Buffer.concat(chunks).toString()) as {
        apiVersion: string;
        kind: string;
        spec: { token: string; audiences?: string[] };
      };
      reviews.push({ authorization: req.headers.authorization, body });
      const known = tokens[body.spec.token];
      const wanted = body.spec.audiences ?? [];
      const base = {
        apiVersion: 'authentication.k8s.io/v1',
        kind: 'TokenReview',
        metadata: { creationTimestamp: null },
        spec: body.spec,
      };
      if (!known) {
        send(201, { ...base, status: { user: {}, error: '[invalid bearer token, token lookup failed]' } });
        return;
      }
      const matching = known.audiences.filter((a) => wanted.length === 0 || wanted.includes(a));
      if (matching.length === 0) {
        send(201, {
          ...base,
          status: {
            user: {},
            error: `[invalid bearer token, token audiences ${JSON.stringify(known.audiences)} is invalid for the target audiences ${JSON.stringify(wanted)}]`,
          },
        });
        return;
      }
      send(201, {
        ...base,
        status: {
          authenticated: true,
          user: { username: known.username, uid: 'uid-1', groups: known.groups, extra: {} },
          audiences: matching,
        },
      });
    });
  });
  const port = await freePort();
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  onCleanup(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { url: `http://127.0.0.1:${port}`, reviews };
}

const SA_GROUPS = ['system:serviceaccounts', 'system:serviceaccounts:default', 'system:authenticated'];

async function kubeCitadel(apiUrl: string, ownToken = CITADEL_TOKEN) {
  const dir = tempDir();
  const tokenFile = path.join(dir, 'sa-token');
  fs.writeFileSync(tokenFile, `${ownToken}\n`);
  const authenticator = new KubernetesTokenReviewAuthenticator({ apiUrl, tokenFile, timeoutMs: 2000 });
  onCleanup(() => authenticator.close());
  return startCitadel({ authenticator });
}

describe('Kubernetes mode: TokenReview against a fake API server (no cluster runs here)', () => {
  const tokens: Record<string, KnownToken> = {
    'reviews-token': {
      username: 'system:serviceaccount:default:bookinfo-reviews',
      groups: SA_GROUPS,
      audiences: ['istio-ca'],
    },
    'api-audience-token': {
      username: 'system:serviceaccount:default:bookinfo-reviews',
      groups: SA_GROUPS,
      audiences: ['https://kubernetes.default.svc.cluster.local'],
    },
    'user-token': { username: 'alice', groups: ['system:authenticated'], audiences: ['istio-ca'] },
  };

  it('issues the reviewed service account identity, sending a real TokenReview with audience istio-ca', async () => {
    const api = await fakeKubernetesApi(tokens);
    const h = await kubeCitadel(api.url);
    const w = await enroll(h, 'reviews-token', { uris: ['spiffe://cluster.local/ns/kube-system/sa/admin'] });
    expect(certificateInfo(w.chain[0]!).uris).toEqual([
      'spiffe://cluster.local/ns/default/sa/bookinfo-reviews',
    ]);
    expect(api.reviews).toEqual([
      {
        authorization: `Bearer ${CITADEL_TOKEN}`,
        body: {
          apiVersion: 'authentication.k8s.io/v1',
          kind: 'TokenReview',
          spec: { token: 'reviews-token', audiences: ['istio-ca'] },
        },
      },
    ]);
    expect(h.logs.find('issued a workload certificate')).toMatchObject({ authenticator: 'kubernetes' });
  });

  it.each([
    [
      'a token the API server does not know',
      'forged-token',
      'UNAUTHENTICATED',
      /token rejected by the Kubernetes API: \[invalid bearer token, token lookup failed\]/,
    ],
    [
      'a token for another audience',
      'api-audience-token',
      'UNAUTHENTICATED',
      /token audiences \["https:\/\/kubernetes.default.svc.cluster.local"\] is invalid for the target audiences \["istio-ca"\]/,
    ],
    [
      'a user token',
      'user-token',
      'PERMISSION_DENIED',
      /"alice" is not a service account; only workloads get certificates/,
    ],
  ])('%s → %s', async (_name, token, code, message) => {
    const api = await fakeKubernetesApi(tokens);
    const h = await kubeCitadel(api.url);
    const err = await enroll(h, token).then(
      () => undefined,
      (e: { codeName: string; details: string }) => e,
    );
    expect(err?.codeName).toBe(code);
    expect(err?.details).toMatch(message);
  });

  it('answers UNAVAILABLE when the API server refuses citadel itself or cannot be reached', async () => {
    const api = await fakeKubernetesApi(tokens);
    const refusedCitadel = await kubeCitadel(api.url, 'stale-token');
    const refused = await enroll(refusedCitadel, 'reviews-token').then(
      () => undefined,
      (e: { codeName: string; details: string }) => e,
    );
    expect(refused?.codeName).toBe('UNAVAILABLE');
    expect(refused?.details).toBe(
      "the Kubernetes API refused citadel's TokenReview (HTTP 401: Unauthorized)",
    );

    const down = await kubeCitadel(`http://127.0.0.1:${await freePort()}`);
    const unreachable = await enroll(down, 'reviews-token').then(
      () => undefined,
      (e: { codeName: string; details: string }) => e,
    );
    expect(unreachable?.codeName).toBe('UNAVAILABLE');
    expect(unreachable?.details).toMatch(
      /cannot reach the Kubernetes API at http:\/\/127.0.0.1:\d+: ECONNREFUSED/,
    );
  });
});
