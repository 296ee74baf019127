import { describe, expect, it } from 'vitest';
import {
  FlagError,
  parseCertificateFlags,
  parseCertKeyType,
  parseLocality,
  parseNetwork,
} from '../src/bootstrap/flags.js';
import { gatewayNode, sidecarNode } from '../src/bootstrap/node.js';

describe('--locality', () => {
  it('parses region[/zone[/subzone]] into Envoy’s Node.locality, and the node carries it', () => {
    expect(parseLocality(undefined)).toBeUndefined();
    expect(parseLocality('us-east')).toEqual({ region: 'us-east' });
    expect(parseLocality('us-east/zone-a/rack1')).toEqual({
      region: 'us-east',
      zone: 'zone-a',
      sub_zone: 'rack1',
    });
    const locality = parseLocality('eu-west/zone-b');
    const common = { ip: '127.0.0.1', labels: {}, adminPort: 1, healthPort: 2, namespace: 'default' };
    expect(
      sidecarNode({ ...common, workload: 'w', serviceAccount: 'sa', ports: [], locality }).locality,
    ).toEqual({
      region: 'eu-west',
      zone: 'zone-b',
    });
    expect(gatewayNode({ ...common, name: 'gw', portMap: {}, locality }).locality).toEqual(locality);
    expect(
      sidecarNode({ ...common, workload: 'w', serviceAccount: 'sa', ports: [] }).locality,
    ).toBeUndefined();
  });

  it('rejects what is not a locality, in one sentence naming the flag', () => {
    for (const bad of ['', 'us-east//rack1', 'a/b/c/d', 'us east', '/zone']) {
      expect(() => parseLocality(bad), bad).toThrow(FlagError);
      expect(() => parseLocality(bad)).toThrow(/^--locality must be region\[\/zone\[\/subzone\]\]/);
    }
  });
});

describe('--cert-key-type and Istio’s key environment', () => {
  const ca = {
    'ca-address': '127.0.0.1:8060',
    'ca-token-file': '/tmp/t.jwt',
    'ca-root-cert': '/tmp/root.pem',
  };
  const who = { namespace: 'default', serviceAccount: 'reviews' };

  it('is ECDSA P-256 unless asked; the flag takes ecdsa, rsa or an exact key type and wins over the environment', () => {
    expect(parseCertificateFlags(ca, who, {})?.keyType).toBe('EC-P256');
    expect(parseCertificateFlags({ ...ca, 'cert-key-type': 'rsa' }, who, {})?.keyType).toBe('RSA-2048');
    expect(parseCertKeyType('ecdsa', {})).toBe('EC-P256');
    expect(parseCertKeyType('RSA-4096', {})).toBe('RSA-4096');
    expect(parseCertKeyType('ec-p384', {})).toBe('EC-P384');
    expect(parseCertKeyType('ecdsa', { ECC_SIGNATURE_ALGORITHM: 'RSA' })).toBe('EC-P256');
  });

  it('reads ECC_SIGNATURE_ALGORITHM with ECC_CURVE or WORKLOAD_RSA_KEY_SIZE when there is no flag', () => {
    expect(parseCertKeyType(undefined, { ECC_SIGNATURE_ALGORITHM: 'ECDSA' })).toBe('EC-P256');
    expect(parseCertKeyType(undefined, { ECC_SIGNATURE_ALGORITHM: 'ECDSA', ECC_CURVE: 'P384' })).toBe(
      'EC-P384',
    );
    expect(parseCertKeyType(undefined, { ECC_SIGNATURE_ALGORITHM: 'RSA' })).toBe('RSA-2048');
    expect(
      parseCertKeyType(undefined, { ECC_SIGNATURE_ALGORITHM: 'rsa', WORKLOAD_RSA_KEY_SIZE: '3072' }),
    ).toBe('RSA-3072');
  });

  it('names the flag or variable and the accepted values when a value is wrong', () => {
    expect(() => parseCertKeyType('dsa', {})).toThrow(
      new FlagError(
        '--cert-key-type must be ecdsa, rsa, EC-P256, EC-P384, RSA-2048, RSA-3072 or RSA-4096, got "dsa"',
      ),
    );
    expect(() => parseCertKeyType(undefined, { ECC_SIGNATURE_ALGORITHM: 'ED25519' })).toThrow(
      /^ECC_SIGNATURE_ALGORITHM must be ECDSA or RSA, got "ED25519"$/,
    );
    expect(() => parseCertKeyType(undefined, { ECC_CURVE: 'P521' })).toThrow(
      /^ECC_CURVE must be P256 or P384/,
    );
    expect(() =>
      parseCertKeyType(undefined, { ECC_SIGNATURE_ALGORITHM: 'RSA', WORKLOAD_RSA_KEY_SIZE: '1024' }),
    ).toThrow(/^WORKLOAD_RSA_KEY_SIZE must be 2048, 3072 or 4096/);
  });
});

describe('reaching the CA: TLS with --ca-root-cert (or CA_ROOT_CA), plaintext only with --ca-plaintext', () => {
  const ca = { 'ca-address': 'istio-citadel.istio-system.svc:8060', 'ca-token-file': '/tmp/t.jwt' };
  const who = { namespace: 'default', serviceAccount: 'reviews' };

  it('takes the root file from the flag, else from CA_ROOT_CA', () => {
    expect(
      parseCertificateFlags({ ...ca, 'ca-root-cert': '/etc/istio/root-cert.pem' }, who, {})?.caRootCertFile,
    ).toBe('/etc/istio/root-cert.pem');
    expect(
      parseCertificateFlags(ca, who, { CA_ROOT_CA: '/var/run/secrets/istio/root-cert.pem' })?.caRootCertFile,
    ).toBe('/var/run/secrets/istio/root-cert.pem');
    expect(parseCertificateFlags({ ...ca, 'ca-plaintext': true }, who, {})?.caRootCertFile).toBeUndefined();
  });

  it('refuses to guess: neither a root nor --ca-plaintext, or both, is one sentence naming the flags', () => {
    expect(() => parseCertificateFlags(ca, who, {})).toThrow(
      new FlagError(
        "--ca-address needs --ca-root-cert FILE (the root the CA's certificate chains to; or CA_ROOT_CA), or --ca-plaintext for local debugging",
      ),
    );
    expect(() =>
      parseCertificateFlags({ ...ca, 'ca-root-cert': '/r.pem', 'ca-plaintext': true }, who, {}),
    ).toThrow('--ca-root-cert and --ca-plaintext exclude each other');
    expect(() => parseCertificateFlags({ 'ca-root-cert': '/r.pem' }, who, {})).toThrow(
      '--ca-root-cert needs --ca-address',
    );
  });
});

describe('--network', () => {
  const common = { ip: '127.0.0.1', labels: {}, adminPort: 1, healthPort: 2, namespace: 'default' };

  it('takes the flag, else ISTIO_META_NETWORK, and the node carries it as Istio’s NETWORK metadata', () => {
    expect(parseNetwork(undefined, {})).toBeUndefined();
    expect(parseNetwork('network1', { ISTIO_META_NETWORK: 'other' })).toBe('network1');
    expect(parseNetwork(undefined, { ISTIO_META_NETWORK: 'network2' })).toBe('network2');
    const sidecar = sidecarNode({
      ...common,
      workload: 'w',
      serviceAccount: 'sa',
      ports: [],
      network: 'network1',
    });
    expect(sidecar.metadata?.NETWORK).toBe('network1');
    expect(gatewayNode({ ...common, name: 'gw', portMap: {}, network: 'network2' }).metadata?.NETWORK).toBe(
      'network2',
    );
    expect(
      sidecarNode({ ...common, workload: 'w', serviceAccount: 'sa', ports: [] }).metadata?.NETWORK,
    ).toBeUndefined();
  });

  it('rejects what is not a network name, naming where it came from', () => {
    expect(() => parseNetwork('net work', {})).toThrow('--network must be a network name');
    expect(() => parseNetwork(undefined, { ISTIO_META_NETWORK: 'a/b' })).toThrow(
      'ISTIO_META_NETWORK must be a network name',
    );
  });
});
