import fs from 'node:fs';
import path from 'node:path';
import {
  type CaCredentials,
  CredentialDirectory,
  createRootCa,
  importPrivateKeyPem,
  issueTlsCertificate,
} from '@mizzen/pki';
import { appEntry } from './paths.js';
import type { ChildSpec } from './supervisor.js';

/** The gateways `mizzen up` runs, with Istio's names: where traffic enters the mesh, and where it leaves. */
export interface GatewayApp {
  name: string;
  namespace: string;
  package: string;
}

export const INGRESS_GATEWAY: GatewayApp = {
  name: 'istio-ingressgateway',
  namespace: 'istio-system',
  package: '@mizzen/ingress-gateway',
};

export const EGRESS_GATEWAY: GatewayApp = {
  name: 'istio-egressgateway',
  namespace: 'istio-system',
  package: '@mizzen/egress-gateway',
};

/** The host the local Bookinfo answers on over HTTPS, and the credential its Gateway server names. */
export const BOOKINFO_HOST = 'bookinfo.local';
export const BOOKINFO_CREDENTIAL = 'bookinfo-credential';

export function gatewayId(g: GatewayApp, host: string): string {
  return `router~${host}~${g.name}.${g.namespace}~${g.namespace}.svc.cluster.local`;
}

/** The process of one gateway: its Gateway server ports mapped to real local ports, its admin ports, its identity. */
export function gatewaySpec(
  g: GatewayApp,
  opts: {
    host: string;
    pilotXds: string;
    portMap: Record<number, number>;
    admin: number;
    health: number;
    stats: number;
    extraArgs: string[];
    ports: Record<string, number>;
  },
): ChildSpec {
  return {
    name: g.name,
    kind: 'gateway',
    entry: appEntry(g.package),
    args: [
      '--pilot',
      opts.pilotXds,
      '--name',
      g.name,
      '--namespace',
      g.namespace,
      '--ip',
      opts.host,
      '--port-map',
      Object.entries(opts.portMap)
        .map(([from, to]) => `${from}=${to}`)
        .join(','),
      '--stats-port',
      String(opts.stats),
      '--admin-port',
      String(opts.admin),
      '--health-port',
      String(opts.health),
      ...opts.extraArgs,
    ],
    ports: { ...opts.ports, admin: opts.admin, health: opts.health, stats: opts.stats },
  };
}

export interface BookinfoTls {
  /** The CA that signs the bookinfo.local certificate: what a client trusts (curl --cacert). */
  caFile: string;
  certFile: string;
  keyFile: string;
}

/** The local ingress CA: made once and kept (so a browser or curl can trust it across runs). */
async function ingressCa(dir: string): Promise<CaCredentials> {
  const certFile = path.join(dir, 'bookinfo-ca.crt');
  const keyFile = path.join(dir, 'bookinfo-ca.key');
  if (fs.existsSync(certFile) && fs.existsSync(keyFile)) {
    return {
      certificate: fs.readFileSync(certFile, 'utf8'),
      privateKey: await importPrivateKeyPem(fs.readFileSync(keyFile, 'utf8')),
    };
  }
  const ca = await createRootCa({ subject: 'O=Mizzen local, CN=Mizzen local ingress CA' });
  fs.writeFileSync(keyFile, ca.privateKeyPem, { mode: 0o600 });
  fs.writeFileSync(certFile, ca.certificate);
  return ca;
}

/**
 * The certificate the ingress serves for bookinfo.local: signed by the local
 * ingress CA (kept in MIZZEN_HOME/certs), issued afresh at every `mizzen up`,
 * and stored as the `bookinfo-credential` credential in istio-system that
 * deploy/local's Gateway names — what `mizzen create secret tls` would do.
 */
export async function bookinfoCertificate(home: string, credentialsDir: string): Promise<BookinfoTls> {
  const dir = path.join(home, 'certs');
  fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ca = await ingressCa(dir);
  const leaf = await issueTlsCertificate({ dnsNames: [BOOKINFO_HOST], issuer: ca, ttlSeconds: 90 * 86_400 });
  const certFile = path.join(dir, `${BOOKINFO_HOST}.crt`);
  const keyFile = path.join(dir, `${BOOKINFO_HOST}.key`);
  fs.writeFileSync(keyFile, leaf.privateKeyPem, { mode: 0o600 });
  fs.writeFileSync(certFile, leaf.certificate);
  new CredentialDirectory(credentialsDir).write(INGRESS_GATEWAY.namespace, BOOKINFO_CREDENTIAL, {
    certificateChain: leaf.certificate,
    privateKey: leaf.privateKeyPem,
  });
  return { caFile: path.join(dir, 'bookinfo-ca.crt'), certFile, keyFile };
}
