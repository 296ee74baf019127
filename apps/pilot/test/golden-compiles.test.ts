import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { compileCluster, compileListener, compileLoadAssignment, RouteTable } from '@mizzen/proxy';
import { TypeUrl } from '@mizzen/xds';
import { describe, expect, it } from 'vitest';

const here = path.dirname(fileURLToPath(import.meta.url));

type Json = Record<string, unknown>;

/**
 * The golden files that hold a whole proxy's config, by xDS type (grpc.json
 * is a proxyless client's, which gRPC runs, not the proxy). The proxy
 * refuses any field it does not honour, so everything pilot generates must
 * compile there — this is what keeps the two sides in step.
 */
const PROXY_GOLDENS = ['sidecar', 'sidecar-iptables', 'gateway', 'gateway-tls', 'gateway-egress'];

const COMPILERS: Record<string, (resource: Json) => unknown> = {
  [TypeUrl.Listener]: (l) => compileListener(l as never),
  [TypeUrl.RouteConfiguration]: (r) => RouteTable.compile(r as never),
  [TypeUrl.Cluster]: (c) => compileCluster(c as never),
  [TypeUrl.ClusterLoadAssignment]: (cla) => compileLoadAssignment(cla as never, String(cla.cluster_name)),
};

describe('every resource in the golden files compiles in the proxy', () => {
  for (const name of PROXY_GOLDENS) {
    it(`${name}.json`, () => {
      const set = JSON.parse(fs.readFileSync(path.join(here, 'golden', `${name}.json`), 'utf8')) as Record<
        string,
        Json[]
      >;
      let compiled = 0;
      for (const [typeUrl, compile] of Object.entries(COMPILERS)) {
        for (const resource of set[typeUrl] ?? []) {
          expect(() => compile(resource), `${name}.json ${String(resource.name)}`).not.toThrow();
          compiled++;
        }
      }
      expect(compiled).toBeGreaterThan(5);
    });
  }
});
