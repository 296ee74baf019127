import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

/**
 * The Envoy v3 API as protobuf reflection, loaded from the .proto files that
 * @grpc/grpc-js-xds ships (the same definitions the proxyless gRPC client
 * decodes with), so every resource pilot serves is a real Envoy message.
 */
const require = createRequire(import.meta.url);

/** Every Envoy/xDS message type Mizzen builds, serves or decodes. Imports pull in the rest. */
const PROTO_FILES = [
  'envoy/service/discovery/v3/ads.proto',
  'envoy/service/status/v3/csds.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/admin/v3/config_dump.proto',
  'envoy/admin/v3/clusters.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
  'envoy/extensions/filters/network/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/filters/http/fault/v3/fault.proto',
  'envoy/extensions/filters/http/cors/v3/cors.proto',
  'envoy/extensions/filters/http/rbac/v3/rbac.proto',
  'envoy/extensions/filters/http/jwt_authn/v3/config.proto',
  'envoy/extensions/filters/http/ext_authz/v3/ext_authz.proto',
  'envoy/extensions/filters/network/ext_authz/v3/ext_authz.proto',
  'envoy/service/auth/v3/external_auth.proto',
  'envoy/extensions/path/match/uri_template/v3/uri_template_match.proto',
  'envoy/extensions/filters/http/local_ratelimit/v3/local_rate_limit.proto',
  'envoy/extensions/filters/listener/original_dst/v3/original_dst.proto',
  'envoy/extensions/filters/listener/http_inspector/v3/http_inspector.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  'envoy/extensions/filters/listener/proxy_protocol/v3/proxy_protocol.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto',
  'envoy/extensions/transport_sockets/proxy_protocol/v3/upstream_proxy_protocol.proto',
  'envoy/extensions/upstreams/http/v3/http_protocol_options.proto',
  'envoy/extensions/clusters/aggregate/v3/cluster.proto',
  'envoy/extensions/access_loggers/file/v3/file.proto',
  'envoy/extensions/access_loggers/open_telemetry/v3/logs_service.proto',
  'envoy/extensions/access_loggers/filters/cel/v3/cel.proto',
  'envoy/config/trace/v3/opentelemetry.proto',
  'envoy/extensions/load_balancing_policies/round_robin/v3/round_robin.proto',
  'envoy/extensions/load_balancing_policies/least_request/v3/least_request.proto',
  'envoy/extensions/load_balancing_policies/random/v3/random.proto',
  'envoy/extensions/load_balancing_policies/ring_hash/v3/ring_hash.proto',
  'envoy/extensions/load_balancing_policies/maglev/v3/maglev.proto',
  'envoy/extensions/load_balancing_policies/wrr_locality/v3/wrr_locality.proto',
  'envoy/extensions/retry/priority/previous_priorities/v3/previous_priorities_config.proto',
  'envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto',
  'xds/type/v3/typed_struct.proto',
  'udpa/type/v1/typed_struct.proto',
];

let cached: protobuf.Root | undefined;

function protoDirectories(): string[] {
  const base = path.join(path.dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  // OpenTelemetry's protos (Envoy's OpenTelemetry access logger imports them) ship with this package.
  const own = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'protos');
  return [...['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => path.join(base, d)), own];
}

/** The protobuf root holding the Envoy API, with proto (snake_case) field names. Loaded once. */
export function envoyRoot(): protobuf.Root {
  if (cached) return cached;
  // descriptor.proto is not bundled with protobufjs; Envoy's annotations extend it.
  protobuf.common(
    'descriptor',
    require('protobufjs/google/protobuf/descriptor.json').nested.google.nested.protobuf.nested,
  );
  const dirs = protoDirectories();
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => {
    if (path.isAbsolute(target)) return target;
    for (const dir of dirs) {
      const candidate = path.join(dir, target);
      if (fs.existsSync(candidate)) return candidate;
    }
    return target;
  };
  for (const file of PROTO_FILES) root.loadSync(file, { keepCase: true });
  root.resolveAll();
  cached = root;
  return root;
}

const typeCache = new Map<string, protobuf.Type>();

/** Looks up a message type by its full name (`envoy.config.listener.v3.Listener`) or type URL. */
export function messageType(nameOrTypeUrl: string): protobuf.Type {
  const name = typeNameOf(nameOrTypeUrl);
  let type = typeCache.get(name);
  if (!type) {
    const found = envoyRoot().lookup(name);
    if (!(found instanceof protobuf.Type)) throw new Error(`unknown protobuf message type ${name}`);
    type = found;
    typeCache.set(name, type);
  }
  return type;
}

/** True when the type URL names a message this build knows how to decode. */
export function isKnownType(nameOrTypeUrl: string): boolean {
  try {
    messageType(nameOrTypeUrl);
    return true;
  } catch {
    return false;
  }
}

export function typeNameOf(nameOrTypeUrl: string): string {
  const slash = nameOrTypeUrl.lastIndexOf('/');
  const name = slash >= 0 ? nameOrTypeUrl.slice(slash + 1) : nameOrTypeUrl;
  return name.startsWith('.') ? name.slice(1) : name;
}

export function typeUrlOf(typeName: string): string {
  return `type.googleapis.com/${typeNameOf(typeName)}`;
}
