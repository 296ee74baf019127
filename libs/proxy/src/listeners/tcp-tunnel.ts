import http from 'node:http';
import type net from 'node:net';
import { Duplex, PassThrough } from 'node:stream';
import type { TcpTunnelingConfig } from '../config/listener.js';
import type { UpstreamTls } from '../security/tls-provider.js';
import type { ClusterRuntime } from '../upstream/cluster-manager.js';
import {
  asConnectFailure,
  connectUpstream,
  type ProxyProtocolStamp,
  proxyHeaderOf,
} from '../upstream/connect.js';
import { sourceAddressFor } from '../upstream/connection-pools.js';
import type { UpstreamHost } from '../upstream/host.js';

/** A tunnel the proxy at the other end refused, with the status it answered. */
export class TunnelRefused extends Error {
  constructor(readonly status: number) {
    super(`the tunnel was refused with HTTP ${status}`);
  }
}

const ok = (status: number) => status >= 200 && status < 300;

/**
 * Envoy's tcp_proxy tunneling: the downstream's bytes go to the cluster's
 * host (a proxy) inside an HTTP request for `hostname` — CONNECT, or a POST
 * streaming both ways — over HTTP/2 when the cluster speaks it, else
 * HTTP/1.1. Resolves with the tunnel as a byte stream once the proxy
 * answered 2xx; rejects on a refusal (TunnelRefused) or a connection failure.
 */
export async function openTcpTunnel(
  cluster: ClusterRuntime,
  host: UpstreamHost,
  tunneling: TcpTunnelingConfig,
  secure: UpstreamTls | undefined,
  stamp: ProxyProtocolStamp | undefined,
): Promise<Duplex> {
  if (cluster.config.http.protocol === 'http2') {
    const headers = tunneling.usePost
      ? {
          ':method': 'POST',
          ':path': tunneling.postPath,
          ':authority': tunneling.hostname,
          ':scheme': 'http',
        }
      : { ':method': 'CONNECT', ':authority': tunneling.hostname };
    const stream = await cluster.openTunnelStream(host, headers, secure, stamp);
    return new Promise((resolve, reject) => {
      stream.once('response', (h) => {
        const status = Number(h[':status']);
        if (ok(status)) resolve(stream);
        else {
          stream.close();
          reject(new TunnelRefused(status));
        }
      });
      stream.once('error', reject);
      stream.once('close', () => reject(new Error('the tunnel stream closed before an answer')));
    });
  }
  const settings = cluster.connectionSettings;
  const connection = () =>
    connectUpstream(host, {
      connectTimeoutMs: settings.connectTimeoutMs,
      localAddress: sourceAddressFor(settings.sourceAddresses, host.address),
      ...(secure ? { tls: secure } : {}),
      alpn: ['http/1.1'],
      keepalive: settings.tcpKeepalive,
      proxyHeader: proxyHeaderOf(stamp),
    });
  return tunnelOverHttp1(connection, tunneling);
}

function tunnelOverHttp1(connection: () => net.Socket, tunneling: TcpTunnelingConfig): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    let connected = false;
    const req = http.request({
      method: tunneling.usePost ? 'POST' : 'CONNECT',
      path: tunneling.usePost ? tunneling.postPath : tunneling.hostname,
      headers: { host: tunneling.hostname },
      // No agent: with createConnection (and agent unset) Node uses this one connection for this request.
      createConnection: () => {
        const socket = connection();
        socket.once('connect', () => {
          connected = true;
        });
        return socket;
      },
    });
    req.once('error', (err) => reject(connected ? err : asConnectFailure(err)));
    if (!tunneling.usePost) {
      req.once('connect', (res, socket, head) => {
        if (!ok(res.statusCode ?? 0)) {
          socket.destroy();
          reject(new TunnelRefused(res.statusCode ?? 0));
          return;
        }
        if (head.length) socket.unshift(head);
        resolve(socket);
      });
      req.end();
      return;
    }
    // POST: the request body carries the downstream's bytes (chunked), the response body the upstream's.
    req.flushHeaders();
    req.once('response', (res) => {
      if (!ok(res.statusCode ?? 0)) {
        res.resume();
        req.destroy();
        reject(new TunnelRefused(res.statusCode ?? 0));
        return;
      }
      const readable = new PassThrough();
      res.pipe(readable);
      res.once('error', (err) => readable.destroy(err));
      const tunnel = Duplex.from({ readable, writable: req });
      tunnel.once('close', () => req.destroy());
      resolve(tunnel);
    });
  });
}
