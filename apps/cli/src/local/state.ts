import fs from 'node:fs';
import path from 'node:path';
import { stateFile } from './paths.js';

export interface ComponentState {
  name: string;
  kind: 'control-plane' | 'gateway' | 'sidecar' | 'app';
  pid: number;
  ports: Record<string, number>;
  log?: string;
}

/** What a running `mizzen up` publishes for `status`, `apply` and friends. */
export interface MeshState {
  pid: number;
  startedAt: string;
  pilot: { http: string; xds: string };
  ingress: string;
  /** Bookinfo over HTTPS at the ingress: `https://bookinfo.local:8443` (resolve the name to 127.0.0.1). */
  ingressHttps?: string;
  /** The telemetry collector's dashboard and query API. */
  dashboard?: string;
  configDir: string;
  home: string;
  components: ComponentState[];
}

export function writeState(state: MeshState): void {
  const file = stateFile();
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`);
  fs.renameSync(tmp, file);
}

export function readState(): MeshState | undefined {
  try {
    return JSON.parse(fs.readFileSync(stateFile(), 'utf8')) as MeshState;
  } catch {
    return undefined;
  }
}

export function removeState(pid: number): void {
  const state = readState();
  if (state && state.pid !== pid) return;
  try {
    fs.rmSync(stateFile());
  } catch {
    // already gone
  }
}
