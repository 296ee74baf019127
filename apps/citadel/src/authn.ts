import type * as grpc from '@grpc/grpc-js';

/** Who the caller proved to be. */
export interface Caller {
  namespace: string;
  serviceAccount: string;
}

/** The gRPC status a failed authentication answers with. */
export type AuthStatus = 'UNAUTHENTICATED' | 'PERMISSION_DENIED' | 'UNAVAILABLE';

/** Authentication failed; the message is safe to return to the caller and to log (never the token). */
export class AuthError extends Error {
  constructor(
    readonly status: AuthStatus,
    message: string,
  ) {
    super(message);
  }
}

/** Turns a bearer token into a proven workload identity, or throws AuthError. */
export interface Authenticator {
  /** `local-token` or `kubernetes`, for logs. */
  readonly kind: string;
  authenticate(token: string): Promise<Caller>;
}

const BEARER = /^Bearer\s+(\S+)\s*$/i;

/** The token in `authorization: Bearer <token>` metadata, as Istio's agent sends it. */
export function bearerToken(metadata: grpc.Metadata): string {
  const values = metadata.get('authorization');
  if (values.length === 0) {
    throw new AuthError('UNAUTHENTICATED', 'no credentials: send "authorization: Bearer <token>" metadata');
  }
  if (values.length > 1)
    throw new AuthError('UNAUTHENTICATED', 'more than one authorization header was sent');
  const match = BEARER.exec(String(values[0]));
  if (!match) throw new AuthError('UNAUTHENTICATED', 'the authorization metadata is not "Bearer <token>"');
  return match[1]!;
}
