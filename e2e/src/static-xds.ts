/**
 * A fixed-config ADS server for end-to-end tests: serves the Envoy resources
 * of a JSON file to one node, over the real xDS gRPC protocol, so a proxy can
 * be given configuration pilot does not generate yet (Istio's Kubernetes-mode
 * virtualInbound). Usage: node static-xds.js HOST PORT FILE, where FILE is
 * `{ "node": ID, "listeners": [...], "routes": [...], "clusters": [...] }`.
 * Prints `static-xds listening on HOST:PORT` once it accepts connections.
 */
import fs from 'node:fs';
import { createLogger } from '@mizzen/runtime';
import { AdsServer, Snapshot, TypeUrl } from '@mizzen/xds';

type Json = Record<string, unknown>;

async function main(): Promise<void> {
  const [host, portText, file] = process.argv.slice(2);
  if (!host || !portText || !file) {
    process.stderr.write('usage: static-xds HOST PORT FILE\n');
    process.exit(2);
  }
  const config = JSON.parse(fs.readFileSync(file, 'utf8')) as {
    node: string;
    listeners?: Json[];
    routes?: Json[];
    clusters?: Json[];
  };
  const server = new AdsServer({ logger: createLogger('static-xds', { level: 'warn' }) });
  server.setSnapshot(
    config.node,
    Snapshot.build({
      [TypeUrl.Listener]: config.listeners ?? [],
      [TypeUrl.RouteConfiguration]: config.routes ?? [],
      [TypeUrl.Cluster]: config.clusters ?? [],
    }),
  );
  const port = await server.listen(Number(portText), host);
  process.stdout.write(`static-xds listening on ${host}:${port}\n`);
  const stop = () => void server.close().then(() => process.exit(0));
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((err: Error) => {
  process.stderr.write(`static-xds: ${err.message}\n`);
  process.exit(1);
});
