import type tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { decodeMessage, encodeMessage } from './json.js';
import { envoyRoot } from './protos.js';

/**
 * gRPC services of the Envoy API (the external authorization service
 * `envoy.service.auth.v3.Authorization`, …) with messages carried as Envoy
 * JSON (proto field names) both ways, and a unary channel to one host: what
 * a proxy needs to call a side service, and what a test needs to serve one,
 * without either knowing protobuf.
 */

export const AUTHORIZATION_SERVICE = 'envoy.service.auth.v3.Authorization';

/** A unary method whose request and response travel as Envoy JSON. */
export type EnvoyUnaryMethod<Req, Res> = grpc.MethodDefinition<Req, Res>;

/**
 * `service`'s `method` as grpc-js describes it (for clients and for
 * `grpc.Server.addService`), encoding and decoding through the Envoy
 * protos. `Req`/`Res` name the JSON shapes the caller expects; they are not
 * checked beyond what encoding checks.
 */
export function envoyUnaryMethod<Req, Res>(service: string, method: string): EnvoyUnaryMethod<Req, Res> {
  const svc = envoyRoot().lookup(service);
  if (!(svc instanceof protobuf.Service)) throw new Error(`unknown gRPC service ${service}`);
  const m = svc.methods[method];
  if (!m) throw new Error(`gRPC service ${service} has no method ${method}`);
  m.resolve();
  if (m.requestStream || m.responseStream) throw new Error(`${service}/${method} is not a unary method`);
  const requestType = m.resolvedRequestType!.fullName;
  const responseType = m.resolvedResponseType!.fullName;
  return {
    path: `/${service}/${method}`,
    requestStream: false,
    responseStream: false,
    requestSerialize: (req) => Buffer.from(encodeMessage(requestType, req)),
    requestDeserialize: (bytes) => decodeMessage(requestType, bytes) as Req,
    responseSerialize: (res) => Buffer.from(encodeMessage(responseType, res)),
    responseDeserialize: (bytes) => decodeMessage(responseType, bytes) as Res,
  };
}

/** The Authorization service's Check: CheckRequest in, CheckResponse out (Envoy JSON). */
export function authorizationCheckMethod<Req = unknown, Res = unknown>(): EnvoyUnaryMethod<Req, Res> {
  return envoyUnaryMethod<Req, Res>(AUTHORIZATION_SERVICE, 'Check');
}

/** A failed unary call: the gRPC status (DEADLINE_EXCEEDED, UNAVAILABLE, …) and its message. */
export class GrpcCallError extends Error {
  override readonly name = 'GrpcCallError';

  constructor(
    readonly code: number,
    readonly details: string,
  ) {
    super(`${grpc.status[code] ?? code}: ${details}`);
  }

  get codeName(): string {
    return grpc.status[this.code] ?? String(this.code);
  }
}

/** How to reach one host: its address, the :authority to send, and TLS when the connection needs it. */
export interface UnaryChannelTarget {
  address: string;
  port: number;
  /** :authority of every call (default `address:port`). */
  authority?: string;
  tls?: {
    /** Client certificate and trusted roots. */
    context: tls.SecureContext;
    /** SNI to send; the address when absent. */
    servername?: string;
    /** Checks the server's certificate (SANs, pins); returns why it is refused, or undefined. */
    verify: (host: string, cert: tls.PeerCertificate) => Error | undefined;
  };
}

/**
 * A grpc-js channel to one host for unary calls, plaintext or TLS from a
 * ready secure context. Reconnects quickly after a failure (a side service
 * that restarts is reachable again within a second), and never retries a
 * call on its own: the caller decides what a failure means.
 */
export class UnaryChannel {
  private readonly client: grpc.Client;

  constructor(target: UnaryChannelTarget) {
    const host = target.address.includes(':') ? `[${target.address}]` : target.address;
    const credentials = target.tls
      ? grpc.credentials.createFromSecureContext(target.tls.context, {
          checkServerIdentity: target.tls.verify,
        })
      : grpc.credentials.createInsecure();
    this.client = new grpc.Client(`${host}:${target.port}`, credentials, {
      ...(target.authority ? { 'grpc.default_authority': target.authority } : {}),
      ...(target.tls?.servername ? { 'grpc.ssl_target_name_override': target.tls.servername } : {}),
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 1_000,
      'grpc.enable_retries': 0,
      'grpc.service_config_disable_resolution': 1,
    });
  }

  /** One call, bounded by `timeoutMs`; rejects with a GrpcCallError. */
  call<Req, Res>(method: EnvoyUnaryMethod<Req, Res>, request: Req, timeoutMs: number): Promise<Res> {
    return new Promise((resolve, reject) => {
      this.client.makeUnaryRequest<Req, Res>(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        new grpc.Metadata(),
        { deadline: Date.now() + timeoutMs },
        (err, response) => {
          if (err) reject(new GrpcCallError(err.code ?? grpc.status.UNKNOWN, err.details || err.message));
          else if (response === undefined) reject(new GrpcCallError(grpc.status.INTERNAL, 'no response'));
          else resolve(response);
        },
      );
    });
  }

  close(): void {
    this.client.close();
  }
}

/** What a Check handler knows of the call: the :authority it was sent to, and the client's certificate over mutual TLS. */
export interface CheckCall {
  readonly authority: string;
  readonly peerCertificate?: tls.PeerCertificate;
}

/** A Check handler's answer; `undefined` leaves the call unanswered (a hung authorizer, until the caller's deadline). */
export type CheckHandler<Req, Res> = (
  request: Req,
  call: CheckCall,
) => Res | undefined | Promise<Res | undefined>;

export interface AuthorizationServerOptions {
  /** Default 127.0.0.1. */
  address?: string;
  /** Default 0: a free port. */
  port?: number;
  /** Serve TLS with this certificate, trusting `rootCa` for client certificates (required when asked). */
  tls?: { certChain: string; privateKey: string; rootCa: string; requireClientCertificate: boolean };
}

/**
 * Serves `envoy.service.auth.v3.Authorization` with `handler`: an external
 * authorizer as Envoy (or this proxy) calls it, requests and answers as
 * Envoy JSON. Resolves once listening, with the port and a close.
 */
export async function serveAuthorization<Req = unknown, Res = unknown>(
  handler: CheckHandler<Req, Res>,
  options: AuthorizationServerOptions = {},
): Promise<{ port: number; close: () => void }> {
  const server = new grpc.Server();
  server.addService(
    { Check: authorizationCheckMethod<Req, Res>() },
    {
      Check: (call: grpc.ServerUnaryCall<Req, Res>, callback: grpc.sendUnaryData<Res>) => {
        const peerCertificate = call.getAuthContext().sslPeerCertificate;
        const info: CheckCall = {
          authority: call.getHost(),
          ...(peerCertificate ? { peerCertificate } : {}),
        };
        Promise.resolve()
          .then(() => handler(call.request, info))
          .then(
            (response) => {
              if (response !== undefined) callback(null, response);
            },
            (err: Error) => callback({ code: grpc.status.INTERNAL, details: err.message }),
          );
      },
    },
  );
  const t = options.tls;
  const credentials = t
    ? grpc.ServerCredentials.createSsl(
        Buffer.from(t.rootCa),
        [{ cert_chain: Buffer.from(t.certChain), private_key: Buffer.from(t.privateKey) }],
        t.requireClientCertificate,
      )
    : grpc.ServerCredentials.createInsecure();
  const address = options.address ?? '127.0.0.1';
  const host = address.includes(':') ? `[${address}]` : address;
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`${host}:${options.port ?? 0}`, credentials, (err, p) =>
      err ? reject(err) : resolve(p),
    ),
  );
  return { port, close: () => server.forceShutdown() };
}
