import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type * as grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';

/**
 * Istio's certificate service (`istio.v1.auth.IstioCertificateService`), the
 * wire contract between a workload's agent and the CA: a CSR and requested
 * TTL in, the certificate chain out. Loaded from the .proto this package
 * ships in `protos/`, resolved from the package root so it is found from
 * both `src/` and `dist/`.
 */
export const PROTOS_DIR = fileURLToPath(new URL('../protos/', import.meta.url));
export const ISTIO_CA_PROTO = path.join(PROTOS_DIR, 'istio', 'v1', 'auth', 'ca.proto');

export const CA_SERVICE_NAME = 'istio.v1.auth.IstioCertificateService';
export const CREATE_CERTIFICATE_METHOD = `/${CA_SERVICE_NAME}/CreateCertificate`;

/** JSON as it travels in a google.protobuf.Struct. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** IstioCertificateRequest with proto field names. */
export interface IstioCertificateRequest {
  /** PEM-encoded PKCS#10 request. */
  csr: string;
  /** Requested validity in seconds; 0 means the CA's default. */
  validity_duration: number;
  /** Node metadata (google.protobuf.Struct as plain JSON); empty when absent. */
  metadata: Record<string, JsonValue>;
}

/** IstioCertificateResponse: the leaf first, the root last. */
export interface IstioCertificateResponse {
  cert_chain: string[];
}

let root: protobuf.Root | undefined;

function caRoot(): protobuf.Root {
  if (root) return root;
  const r = new protobuf.Root();
  r.resolvePath = (_origin, target) => (path.isAbsolute(target) ? target : path.join(PROTOS_DIR, target));
  r.loadSync(ISTIO_CA_PROTO, { keepCase: true });
  r.resolveAll();
  root = r;
  return r;
}

function type(name: string): protobuf.Type {
  return caRoot().lookupType(name);
}

// protobufjs bundles struct.proto with camelCase field names; look them up rather than assume.
function valueFields(): Record<'null' | 'number' | 'string' | 'bool' | 'struct' | 'list', string> {
  const fields = type('google.protobuf.Value').fields;
  const pick = (snake: string) =>
    fields[snake] ? snake : snake.replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase());
  return {
    null: pick('null_value'),
    number: pick('number_value'),
    string: pick('string_value'),
    bool: pick('bool_value'),
    struct: pick('struct_value'),
    list: pick('list_value'),
  };
}

// biome-ignore lint/suspicious/noExplicitAny: protobufjs messages are untyped objects
type Loose = any;

function valueToJson(v: Loose): JsonValue {
  if (v == null) return null;
  // Decoded messages carry scalar defaults on their prototype; only own properties were on the wire.
  const n = valueFields();
  if (Object.hasOwn(v, n.number)) return v[n.number];
  if (Object.hasOwn(v, n.string)) return v[n.string];
  if (Object.hasOwn(v, n.bool)) return v[n.bool];
  if (Object.hasOwn(v, n.struct)) return structToJson(v[n.struct]);
  if (Object.hasOwn(v, n.list)) return ((v[n.list]?.values ?? []) as Loose[]).map(valueToJson);
  return null;
}

function structToJson(s: Loose): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const [k, v] of Object.entries((s?.fields ?? {}) as Record<string, Loose>)) out[k] = valueToJson(v);
  return out;
}

function valueFromJson(v: unknown): Loose {
  const n = valueFields();
  if (v === null || v === undefined) return { [n.null]: 0 };
  if (typeof v === 'number') return { [n.number]: v };
  if (typeof v === 'string') return { [n.string]: v };
  if (typeof v === 'boolean') return { [n.bool]: v };
  if (Array.isArray(v)) return { [n.list]: { values: v.map(valueFromJson) } };
  return { [n.struct]: structFromJson(v as Record<string, unknown>) };
}

function structFromJson(json: Record<string, unknown>): Loose {
  return { fields: Object.fromEntries(Object.entries(json).map(([k, v]) => [k, valueFromJson(v)])) };
}

function longToNumber(value: Loose): number {
  if (typeof value === 'number') return value;
  if (value && typeof value.toNumber === 'function') return value.toNumber();
  return Number(value ?? 0);
}

const REQUEST = 'istio.v1.auth.IstioCertificateRequest';
const RESPONSE = 'istio.v1.auth.IstioCertificateResponse';

export function encodeCertificateRequest(req: Partial<IstioCertificateRequest> & { csr: string }): Buffer {
  const t = type(REQUEST);
  // proto3 leaves default values off the wire.
  const message: Loose = {};
  if (req.csr) message.csr = req.csr;
  if (req.validity_duration) message.validity_duration = req.validity_duration;
  if (req.metadata && Object.keys(req.metadata).length) message.metadata = structFromJson(req.metadata);
  return Buffer.from(t.encode(t.fromObject(message)).finish());
}

export function decodeCertificateRequest(bytes: Buffer): IstioCertificateRequest {
  const m = type(REQUEST).decode(bytes) as Loose;
  return {
    csr: m.csr ?? '',
    validity_duration: longToNumber(m.validity_duration),
    metadata: m.metadata ? structToJson(m.metadata) : {},
  };
}

export function encodeCertificateResponse(res: IstioCertificateResponse): Buffer {
  const t = type(RESPONSE);
  return Buffer.from(t.encode(t.fromObject({ cert_chain: res.cert_chain })).finish());
}

export function decodeCertificateResponse(bytes: Buffer): IstioCertificateResponse {
  const m = type(RESPONSE).decode(bytes) as Loose;
  return { cert_chain: [...((m.cert_chain ?? []) as string[])] };
}

/** The unary method as grpc-js describes it, for servers (`addService`) and clients alike. */
export const createCertificateMethod: grpc.MethodDefinition<
  IstioCertificateRequest,
  IstioCertificateResponse
> = {
  path: CREATE_CERTIFICATE_METHOD,
  requestStream: false,
  responseStream: false,
  requestSerialize: (req) => encodeCertificateRequest(req),
  requestDeserialize: decodeCertificateRequest,
  responseSerialize: encodeCertificateResponse,
  responseDeserialize: decodeCertificateResponse,
  originalName: 'createCertificate',
};

/** `server.addService(istioCertificateService, { CreateCertificate: handler })`. */
export const istioCertificateService = {
  CreateCertificate: createCertificateMethod,
} satisfies grpc.ServiceDefinition;

export type CreateCertificateHandler = grpc.handleUnaryCall<
  IstioCertificateRequest,
  IstioCertificateResponse
>;

/** The handlers `istioCertificateService` needs. */
export interface IstioCertificateServiceHandlers extends grpc.UntypedServiceImplementation {
  CreateCertificate: CreateCertificateHandler;
}
