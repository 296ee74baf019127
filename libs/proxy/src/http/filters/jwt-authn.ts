import { FilterNames, JwtAuthenticator } from '@mizzen/policy';
import type { HeaderMap } from '../../config/headers.js';
import type { FilterStatus, HttpFilter, HttpFilterContext } from './filter.js';

export const JWT_AUTHN_TYPE =
  'type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication';

/**
 * Envoy's jwt_authn as Istio's RequestAuthentication configures it: a token
 * that is present must verify (issuer, audiences, signature against the JWKS,
 * expiry) or the request gets 401; a request without a token goes on
 * unauthenticated and AuthorizationPolicy decides (requestPrincipals).
 * What was verified becomes request.auth.* for the authorization filters,
 * and the token, payload and claim headers are handled as configured.
 */
export class JwtAuthnFilter implements HttpFilter {
  constructor(
    readonly name: string,
    private readonly authenticator: JwtAuthenticator,
  ) {}

  static compile(name: string, config: Record<string, unknown>, where: string): JwtAuthnFilter {
    return new JwtAuthnFilter(name, JwtAuthenticator.compile(config as never, {}, where));
  }

  async decode(ctx: HttpFilterContext): Promise<FilterStatus> {
    const outcome = await this.authenticator.authenticate({
      method: ctx.request.method,
      path: ctx.request.path,
      host: ctx.request.authority,
      scheme: ctx.request.scheme,
      headers: ctx.request.headers,
    });
    if (!outcome.ok) {
      ctx.info.authz = { allowed: false, deniedBy: 'jwt', dryRun: [], audited: [] };
      ctx.reply(outcome.status, outcome.body, outcome.headers);
      return 'stop';
    }
    replaceHeaders(ctx.request.headers, outcome.headers);
    ctx.request.path = outcome.path;
    if (outcome.auth) ctx.info.requestAuth = outcome.auth;
    if (Object.keys(outcome.payloads).length) {
      ctx.info.dynamicMetadata[FilterNames.jwtAuthn] = {
        ...ctx.info.dynamicMetadata[FilterNames.jwtAuthn],
        ...outcome.payloads,
      };
    }
    return 'continue';
  }
}

/** The request's headers become `next` (the filter removed the token or added payload/claim headers). */
function replaceHeaders(
  headers: HeaderMap,
  next: Readonly<Record<string, string | readonly string[] | undefined>>,
) {
  for (const key of Object.keys(headers)) if (!(key in next)) delete headers[key];
  for (const [k, v] of Object.entries(next))
    headers[k] = typeof v === 'string' || v === undefined ? v : [...v];
}
