import { isLogLevel, type Logger } from '@mizzen/runtime';
import type { AdsClient, XdsNode } from '@mizzen/xds';
import Fastify, { type FastifyInstance } from 'fastify';
import type { AppliedConfig } from '../agent/applied-config.js';
import type { ListenerManager } from '../listeners/listener-manager.js';
import { type CertStatus, certsView, WORKLOAD_SECRET } from '../security/cert-manager.js';
import type { SecretStore } from '../security/secret-store.js';
import type { ClusterManager } from '../upstream/cluster-manager.js';
import type { ConnectionPools } from '../upstream/connection-pools.js';
import { clustersJson, clustersText } from './clusters.js';
import { configDump } from './config-dump.js';

export interface AdminDeps {
  node: XdsNode;
  applied: AppliedConfig;
  clusters: ClusterManager;
  pools: ConnectionPools;
  listeners: ListenerManager;
  ads: AdsClient;
  logger: Logger;
  isReady: () => boolean;
  startedAt: Date;
  secrets: SecretStore;
  /** Every secret the proxy's TLS contexts use. */
  secretNames: () => string[];
  /** The workload certificate's state, when this proxy has one. */
  certStatus?: () => CertStatus;
}

/** Envoy's admin API (15000): config dump, clusters, listeners, readiness and log levels at run time. */
export function createAdminServer(deps: AdminDeps): FastifyInstance {
  const app = Fastify({ logger: false });
  const state = () => (deps.isReady() ? 'LIVE' : 'PRE_INITIALIZING');

  // The workload certificate first (when the agent makes one), then every secret a TLS context names.
  const secretNames = () => [
    ...new Set([...(deps.certStatus ? [WORKLOAD_SECRET] : []), ...deps.secretNames()]),
  ];

  app.get<{ Querystring: { include_eds?: string } }>('/config_dump', async (req) =>
    configDump(deps.node, deps.applied, req.query.include_eds !== undefined, {
      store: deps.secrets,
      names: secretNames(),
    }),
  );

  app.get<{ Querystring: { format?: string } }>('/clusters', async (req, reply) => {
    if (req.query.format === 'json') return clustersJson(deps.clusters);
    reply.type('text/plain');
    return clustersText(deps.clusters, deps.pools);
  });

  app.get<{ Querystring: { format?: string } }>('/listeners', async (req, reply) => {
    const list = deps.listeners.list();
    if (req.query.format === 'json') {
      return {
        listener_statuses: list.map((l) => ({
          name: l.name,
          local_address: l.pipe
            ? { pipe: { path: l.address } }
            : { socket_address: { address: l.address, port_value: l.port } },
        })),
      };
    }
    reply.type('text/plain');
    return `${list.map((l) => `${l.name}::${l.pipe ? l.address : `${l.address}:${l.port}`}`).join('\n')}\n`;
  });

  app.get('/ready', async (_req, reply) => {
    const s = state();
    reply.code(s === 'LIVE' ? 200 : 503).type('text/plain');
    return `${s}\n`;
  });

  // Envoy's /certs, plus the identity and rotation state of the workload certificate.
  app.get('/certs', async () => ({
    ...certsView(deps.secrets, secretNames()),
    workload: deps.certStatus?.(),
  }));

  app.get('/server_info', async () => ({
    state: state(),
    node: deps.node,
    uptime_current_epoch: `${Math.round((Date.now() - deps.startedAt.getTime()) / 1000)}s`,
    xds: deps.ads.status(),
  }));

  const logging = async (
    req: { query: { level?: string } },
    reply: { code: (n: number) => unknown; type: (t: string) => unknown },
  ) => {
    const level = req.query.level;
    if (level !== undefined) {
      if (!isLogLevel(level)) {
        reply.code(400);
        reply.type('text/plain');
        return `unknown log level "${level}"; use trace, debug, info, warn, error, fatal or silent\n`;
      }
      deps.logger.level = level;
      deps.logger.info({ newLevel: level }, 'log level changed through the admin API');
    }
    reply.type('text/plain');
    return `active loggers:\n  proxy: ${deps.logger.level}\n`;
  };
  app.get<{ Querystring: { level?: string } }>('/logging', logging);
  app.post<{ Querystring: { level?: string } }>('/logging', logging);
  return app;
}

/** The health port (15021): `/healthz/ready` answers 200 once the proxy has its config. */
export function createHealthServer(isReady: () => boolean): FastifyInstance {
  const app = Fastify({ logger: false });
  app.get('/healthz/ready', async (_req, reply) => {
    if (isReady()) return reply.code(200).type('text/plain').send('');
    return reply.code(503).type('text/plain').send('proxy has not received its configuration yet\n');
  });
  return app;
}
