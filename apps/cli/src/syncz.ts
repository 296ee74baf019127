import { CliError } from './errors.js';
import { pilotRequest } from './pilot-client.js';

/** One xDS type's state at pilot for a proxy (libs/xds TypeStatus). */
export interface SyncTypeStatus {
  type: string;
  state: string;
  sentVersion?: string;
  ackedVersion?: string;
  error?: string;
}

/** One proxy as pilot's `/debug/syncz` reports it (apps/pilot/src/http/debug.ts). */
export interface SyncEntry {
  proxy: string;
  proxy_type: string;
  namespace?: string;
  workload?: string;
  service_account?: string;
  istio_version?: string;
  proxy_version?: string;
  cluster_id?: string;
  /** The pilot instance serving it. */
  istiod?: string;
  /** Where its admin API listens, `IP:PORT`. */
  admin?: string;
  ports?: {
    admin?: number;
    health?: number;
    stats?: number;
    outbound?: number;
    inbound?: { listenPort: number }[];
    gateway?: Record<string, number>;
  };
  sync?: Record<string, string>;
  errors?: Record<string, string>;
  warnings?: string[];
  types?: SyncTypeStatus[];
}

/** Every proxy connected to pilot, from its `/debug/syncz`. */
export async function fetchSyncz(pilot: string): Promise<SyncEntry[]> {
  const { status, body } = await pilotRequest<SyncEntry[]>(pilot, '/debug/syncz');
  if (status !== 200) throw new CliError(`pilot at ${pilot} answered ${status} to /debug/syncz`);
  return body;
}
