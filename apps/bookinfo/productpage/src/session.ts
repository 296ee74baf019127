import { forwardedHeaders } from '@mizzen/bookinfo-common';
import type { FastifyRequest } from 'fastify';

/**
 * Who is signed in. Like Bookinfo's productpage there is no password check:
 * signing in only names the user, which then travels as `end-user` on every
 * call so routing rules can match on it. The name lives in a `user` cookie.
 */
export const USER_COOKIE = 'user';

/** 1 to 64 printable ASCII characters (it becomes a header value). */
const USERNAME = /^[\x20-\x7e]{1,64}$/;

export const USERNAME_RULE = 'a user name of 1 to 64 printable ASCII characters';

/** The trimmed user name, or undefined when it is not one. */
export function validUsername(raw: unknown): string | undefined {
  if (typeof raw !== 'string') return undefined;
  const name = raw.trim();
  return USERNAME.test(name) ? name : undefined;
}

/** The cookies of a Cookie header, by name; the first of repeated names wins. */
export function parseCookies(header: string | undefined): Map<string, string> {
  const cookies = new Map<string, string>();
  for (const part of (header ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    const name = part.slice(0, eq).trim();
    if (name && !cookies.has(name)) cookies.set(name, part.slice(eq + 1).trim());
  }
  return cookies;
}

/** The signed-in user, if the request carries a well-formed user cookie. */
export function sessionUser(req: FastifyRequest): string | undefined {
  const raw = parseCookies(req.headers.cookie).get(USER_COOKIE);
  if (raw === undefined) return undefined;
  let name: string;
  try {
    name = decodeURIComponent(raw);
  } catch {
    return undefined;
  }
  // Exactly what login would have stored: nothing trimmed away, nothing out of range.
  return validUsername(name) === name ? name : undefined;
}

export function loginCookie(user: string): string {
  return `${USER_COOKIE}=${encodeURIComponent(user)}; Path=/; HttpOnly; SameSite=Lax`;
}

export function logoutCookie(): string {
  return `${USER_COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax`;
}

/** The headers for calls made while serving `req`: the forwarded ones, and `end-user` when signed in. */
export function outboundHeaders(req: FastifyRequest): Record<string, string> {
  const headers = forwardedHeaders(req.headers);
  const user = sessionUser(req);
  if (user !== undefined) headers['end-user'] = user;
  return headers;
}
