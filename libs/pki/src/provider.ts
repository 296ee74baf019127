/**
 * The one place that loads @peculiar/x509. It needs a Reflect metadata
 * polyfill loaded before it, and a WebCrypto provider: Node's own
 * (`globalThis.crypto`), so every key operation runs in Node's OpenSSL.
 */
import 'reflect-metadata';
import type { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(globalThis.crypto);

export { x509 };

export const subtle: webcrypto.SubtleCrypto = globalThis.crypto.subtle;

// WebCrypto types under their standard names (the repo compiles without the DOM lib).
export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;
export type Algorithm = webcrypto.Algorithm;
export type EcdsaParams = webcrypto.EcdsaParams;
export type EcKeyGenParams = webcrypto.EcKeyGenParams;
export type EcKeyImportParams = webcrypto.EcKeyImportParams;
export type RsaHashedKeyGenParams = webcrypto.RsaHashedKeyGenParams;
export type RsaHashedImportParams = webcrypto.RsaHashedImportParams;
