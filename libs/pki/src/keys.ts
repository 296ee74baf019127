import { createPrivateKey, type KeyObject } from 'node:crypto';
import { PkiError } from './errors.js';
import {
  type Algorithm,
  type CryptoKey,
  type CryptoKeyPair,
  type EcdsaParams,
  type EcKeyGenParams,
  type EcKeyImportParams,
  type RsaHashedImportParams,
  type RsaHashedKeyGenParams,
  subtle,
  x509,
} from './provider.js';

/** Key pairs Mizzen generates: ECDSA P-256 unless asked otherwise, RSA when a peer needs it. */
export const KEY_TYPES = ['EC-P256', 'EC-P384', 'RSA-2048', 'RSA-3072', 'RSA-4096'] as const;
export type KeyType = (typeof KEY_TYPES)[number];

export interface KeyPair {
  readonly type: KeyType;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
}

const RSA_PUBLIC_EXPONENT = new Uint8Array([1, 0, 1]);

export function isKeyType(value: string): value is KeyType {
  return (KEY_TYPES as readonly string[]).includes(value);
}

/** `ec-p256`, `RSA-2048`…: case-insensitive; throws naming the accepted values. */
export function parseKeyType(value: string): KeyType {
  const upper = value.toUpperCase();
  if (isKeyType(upper)) return upper;
  throw new PkiError('unsupported-key', `unknown key type "${value}" (one of ${KEY_TYPES.join(', ')})`);
}

function generationParams(type: KeyType): EcKeyGenParams | RsaHashedKeyGenParams {
  switch (type) {
    case 'EC-P256':
      return { name: 'ECDSA', namedCurve: 'P-256' };
    case 'EC-P384':
      return { name: 'ECDSA', namedCurve: 'P-384' };
    case 'RSA-2048':
    case 'RSA-3072':
    case 'RSA-4096':
      return {
        name: 'RSASSA-PKCS1-v1_5',
        modulusLength: Number(type.slice(4)),
        publicExponent: RSA_PUBLIC_EXPONENT,
        hash: 'SHA-256',
      };
  }
}

/** A new key pair. The private key is extractable so it can be written as PKCS#8 for `node:tls`. */
export async function generateKeyPair(type: KeyType = 'EC-P256'): Promise<KeyPair> {
  if (!isKeyType(type)) throw new PkiError('unsupported-key', `unknown key type "${String(type)}"`);
  const pair = (await subtle.generateKey(generationParams(type), true, ['sign', 'verify'])) as CryptoKeyPair;
  return { type, privateKey: pair.privateKey, publicKey: pair.publicKey };
}

function pem(der: ArrayBuffer, tag: string): string {
  const text = x509.PemConverter.encode(der, tag);
  return text.endsWith('\n') ? text : `${text}\n`;
}

/** PKCS#8 PEM (`BEGIN PRIVATE KEY`), the form `tls.createSecureContext({ key })` takes directly. */
export async function exportPrivateKeyPem(key: CryptoKey): Promise<string> {
  if (key.type !== 'private') throw new PkiError('malformed', 'exportPrivateKeyPem needs a private key');
  return pem(await subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

/** SubjectPublicKeyInfo PEM (`BEGIN PUBLIC KEY`). */
export async function exportPublicKeyPem(key: CryptoKey): Promise<string> {
  if (key.type !== 'public') throw new PkiError('malformed', 'exportPublicKeyPem needs a public key');
  return pem(await subtle.exportKey('spki', key), 'PUBLIC KEY');
}

const NODE_CURVES: Record<string, string> = {
  prime256v1: 'P-256',
  secp384r1: 'P-384',
  secp521r1: 'P-521',
};

function importParams(key: KeyObject): EcKeyImportParams | RsaHashedImportParams {
  if (key.asymmetricKeyType === 'ec') {
    const curve = NODE_CURVES[key.asymmetricKeyDetails?.namedCurve ?? ''];
    if (!curve) {
      throw new PkiError(
        'unsupported-key',
        `EC keys on curve ${key.asymmetricKeyDetails?.namedCurve ?? 'unknown'} are not supported (P-256, P-384, P-521 are)`,
      );
    }
    return { name: 'ECDSA', namedCurve: curve };
  }
  if (key.asymmetricKeyType === 'rsa') return { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' };
  throw new PkiError(
    'unsupported-key',
    `${key.asymmetricKeyType ?? 'unknown'} private keys are not supported (ECDSA and RSA are)`,
  );
}

/**
 * A signing key from PEM: PKCS#8 (`PRIVATE KEY`), PKCS#1 (`RSA PRIVATE KEY`)
 * or SEC1 (`EC PRIVATE KEY`), as openssl and cert-manager write them.
 * Node's OpenSSL normalises the encoding to PKCS#8; WebCrypto imports that.
 */
export async function importPrivateKeyPem(text: string, extractable = false): Promise<CryptoKey> {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: text, format: 'pem' });
  } catch {
    throw new PkiError(
      'malformed',
      'not an unencrypted PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC; encrypted keys are not supported)',
    );
  }
  const params = importParams(key);
  const der = key.export({ format: 'der', type: 'pkcs8' });
  return subtle.importKey('pkcs8', der, params, extractable, ['sign']);
}

/** The signature algorithm a certificate or CSR signed with `key` uses: SHA-256 for P-256 and RSA, larger hashes for larger curves. */
export function signingAlgorithm(key: CryptoKey): Algorithm | EcdsaParams {
  const alg = key.algorithm as Algorithm & { namedCurve?: string };
  switch (alg.name) {
    case 'ECDSA': {
      const hash =
        alg.namedCurve === 'P-384' ? 'SHA-384' : alg.namedCurve === 'P-521' ? 'SHA-512' : 'SHA-256';
      return { name: 'ECDSA', hash } as EcdsaParams;
    }
    case 'RSASSA-PKCS1-v1_5':
      return { name: 'RSASSA-PKCS1-v1_5' };
    default:
      throw new PkiError(
        'unsupported-key',
        `cannot sign with a ${alg.name} key (ECDSA and RSA are supported)`,
      );
  }
}

/** "ECDSA P-256", "RSA 2048": a key algorithm as people say it. */
export function describeKeyAlgorithm(algorithm: Algorithm): string {
  const a = algorithm as Algorithm & { namedCurve?: string; modulusLength?: number };
  if (a.name === 'ECDSA' || a.name === 'ECDH') return `ECDSA ${a.namedCurve ?? 'unknown curve'}`;
  if (a.name === 'RSASSA-PKCS1-v1_5' || a.name === 'RSA-OAEP') return `RSA ${a.modulusLength ?? '?'}`;
  if (a.name === 'RSA-PSS') return `RSA-PSS ${a.modulusLength ?? '?'}`;
  if (/^\d+(\.\d+)+$/.test(a.name)) return `unknown algorithm (OID ${a.name})`;
  return a.name;
}

/**
 * True when `privateKey` is the private half of `publicKey`: a fresh random
 * challenge signed with one verifies with the other. Works for every
 * algorithm without comparing key encodings.
 */
export async function keyPairMatches(privateKey: CryptoKey, publicKey: x509.PublicKey): Promise<boolean> {
  const algorithm = signingAlgorithm(privateKey);
  let verifier: CryptoKey;
  try {
    verifier = await publicKey.export(privateKey.algorithm as EcKeyImportParams, ['verify']);
  } catch {
    return false;
  }
  const challenge = globalThis.crypto.getRandomValues(new Uint8Array(32));
  const signature = await subtle.sign(algorithm, privateKey, challenge);
  try {
    return await subtle.verify(algorithm, verifier, signature, challenge);
  } catch {
    return false;
  }
}
