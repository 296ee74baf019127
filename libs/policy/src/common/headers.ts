/**
 * The connection-specific header fields of HTTP/1 (RFC 9110 §7.6.1): they
 * describe how a message travels on one connection, not the message, so a
 * proxy consumes them and never passes them on.
 */
export const HOP_BY_HOP_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
]);
