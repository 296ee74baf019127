import net from 'node:net';
import { parse } from 'yaml';

/** Where a network's endpoints are: the registry (cluster id) they come from, or an address range. */
export type NetworkEndpointsFrom = { fromRegistry: string } | { fromCidr: string };

/**
 * How another network reaches this one: a fixed address (a load balancer in
 * front of its east-west gateway), or a service in the registry whose
 * endpoints are the gateway.
 */
export type NetworkGatewaySpec =
  | { address: string; port: number; locality?: string }
  | { registryServiceName: string; port: number; locality?: string };

export interface NetworkSpec {
  endpoints: NetworkEndpointsFrom[];
  gateways: NetworkGatewaySpec[];
}

/** Istio's MeshNetworks (the `meshNetworks` key of the istio ConfigMap, pilot's `--meshNetworks` file). */
export interface MeshNetworks {
  networks: Record<string, NetworkSpec>;
}

/** A network name as Istio takes it: a Kubernetes label value (it is also the `topology.istio.io/network` label). */
const NETWORK_NAME = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const DNS_NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

class MeshNetworksError extends Error {}

function fail(at: string, message: string): never {
  throw new MeshNetworksError(`meshNetworks: ${at}: ${message}`);
}

function mapping(value: unknown, at: string): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(at, 'must be a mapping');
  return value as Record<string, unknown>;
}

function list(value: unknown, at: string): unknown[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) fail(at, 'must be a list');
  return value;
}

/** Every key of `obj` must be one of `allowed` (Istio's protos reject unknown fields). */
function onlyFields(obj: Record<string, unknown>, allowed: readonly string[], at: string): void {
  for (const key of Object.keys(obj))
    if (!allowed.includes(key)) fail(`${at}.${key}`, `unknown field (expected one of ${allowed.join(', ')})`);
}

function nonEmptyString(value: unknown, at: string): string {
  if (typeof value !== 'string' || value.trim() === '') fail(at, 'must be a non-empty string');
  return value;
}

function cidr(value: unknown, at: string): string {
  const text = nonEmptyString(value, at);
  const [address, bits, ...rest] = text.split('/');
  const family = net.isIP(address ?? '');
  const max = family === 6 ? 128 : 32;
  if (family === 0 || bits === undefined || rest.length || !/^\d+$/.test(bits) || Number(bits) > max)
    fail(at, `must be an address range such as 10.0.0.0/16, got ${JSON.stringify(text)}`);
  return text;
}

function port(value: unknown, at: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535)
    fail(at, `must be a port number (1-65535), got ${JSON.stringify(value ?? null)}`);
  return value;
}

function endpointsFrom(value: unknown, at: string): NetworkEndpointsFrom {
  const obj = mapping(value, at);
  onlyFields(obj, ['fromRegistry', 'fromCidr'], at);
  const registry = obj.fromRegistry;
  const range = obj.fromCidr;
  if ((registry === undefined) === (range === undefined))
    fail(at, 'must set exactly one of fromRegistry and fromCidr');
  return registry !== undefined
    ? { fromRegistry: nonEmptyString(registry, `${at}.fromRegistry`) }
    : { fromCidr: cidr(range, `${at}.fromCidr`) };
}

function gateway(value: unknown, at: string): NetworkGatewaySpec {
  const obj = mapping(value, at);
  onlyFields(obj, ['address', 'registryServiceName', 'port', 'locality'], at);
  const locality =
    obj.locality === undefined ? {} : { locality: nonEmptyString(obj.locality, `${at}.locality`) };
  const p = port(obj.port, `${at}.port`);
  if ((obj.address === undefined) === (obj.registryServiceName === undefined))
    fail(at, 'must set exactly one of address and registryServiceName');
  if (obj.address !== undefined) {
    const address = nonEmptyString(obj.address, `${at}.address`);
    // Proxies dial gateway endpoints as they are: an IP address (a DNS name would need a DNS cluster per network).
    if (!net.isIP(address)) fail(`${at}.address`, `must be an IP address, got ${JSON.stringify(address)}`);
    return { address, port: p, ...locality };
  }
  const name = nonEmptyString(obj.registryServiceName, `${at}.registryServiceName`);
  if (!DNS_NAME.test(name))
    fail(
      `${at}.registryServiceName`,
      `must be a service's host name such as istio-eastwestgateway.istio-system.svc.cluster.local, got ${JSON.stringify(name)}`,
    );
  return { registryServiceName: name, port: p, ...locality };
}

/**
 * Reads Istio's MeshNetworks — `networks: {NAME: {endpoints: [...], gateways:
 * [...]}}` — from YAML text or an already parsed value, checked as Istio's
 * ValidateMeshNetworks does; the error names the field (`meshNetworks:
 * networks.network2.gateways[0].port: must be a port number…`).
 */
export function parseMeshNetworks(input: string | unknown): MeshNetworks {
  const doc = typeof input === 'string' ? (input.trim() === '' ? {} : parse(input)) : input;
  if (doc === undefined || doc === null) return { networks: {} };
  const root = mapping(doc, '(top level)');
  onlyFields(root, ['networks'], '(top level)');
  const networks: Record<string, NetworkSpec> = {};
  if (root.networks === undefined || root.networks === null) return { networks };
  for (const [name, value] of Object.entries(mapping(root.networks, 'networks'))) {
    const at = `networks.${name}`;
    if (!NETWORK_NAME.test(name))
      fail(at, 'a network name must be a label value (letters, digits, -, _ and ., at most 63)');
    const spec = mapping(value, at);
    onlyFields(spec, ['endpoints', 'gateways'], at);
    const endpoints = list(spec.endpoints, `${at}.endpoints`).map((e, i) =>
      endpointsFrom(e, `${at}.endpoints[${i}]`),
    );
    const gateways = list(spec.gateways, `${at}.gateways`).map((g, i) => gateway(g, `${at}.gateways[${i}]`));
    networks[name] = { endpoints, gateways };
  }
  return { networks };
}
