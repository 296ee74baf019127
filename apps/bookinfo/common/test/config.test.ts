import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  parseProductId,
  readCallerConfig,
  readListen,
  readLogLevel,
  readPort,
  readProxy,
  readServerConfig,
  serviceUrl,
} from '../src/config.js';

describe('reading the environment', () => {
  it('listens on 0.0.0.0:9080 unless HOST and PORT say otherwise', () => {
    expect(readListen({})).toEqual({ host: '0.0.0.0', port: 9080 });
    expect(readListen({ HOST: '127.0.0.1', PORT: '0' })).toEqual({ host: '127.0.0.1', port: 0 });
    expect(readListen({ HOST: ' ', PORT: '' })).toEqual({ host: '0.0.0.0', port: 9080 });
  });

  it('rejects ports that are not integers from 0 to 65535, naming the variable', () => {
    for (const bad of ['abc', '-1', '65536', '80.5', '0x50']) {
      expect(() => readPort({ PORT: bad }, 'PORT', 9080)).toThrow(ConfigError);
    }
    expect(() => readPort({ PORT: 'abc' }, 'PORT', 9080)).toThrow(
      "PORT must be a port number from 0 to 65535, got 'abc'",
    );
    expect(readPort({ PORT: '65535' }, 'PORT', 1)).toBe(65535);
  });

  it('builds service URLs like Istio Bookinfo: <NAME>_HOSTNAME, SERVICES_DOMAIN, <NAME>_SERVICE_PORT', () => {
    expect(serviceUrl({}, 'reviews')).toBe('http://reviews:9080');
    expect(serviceUrl({ SERVICES_DOMAIN: 'default.svc.cluster.local' }, 'details')).toBe(
      'http://details.default.svc.cluster.local:9080',
    );
    expect(serviceUrl({ RATINGS_HOSTNAME: 'ratings-canary', RATINGS_SERVICE_PORT: '8080' }, 'ratings')).toBe(
      'http://ratings-canary:8080',
    );
    expect(() => serviceUrl({ REVIEWS_HOSTNAME: 'a/b' }, 'reviews')).toThrow('REVIEWS_HOSTNAME');
    expect(() => serviceUrl({ DETAILS_SERVICE_PORT: 'x' }, 'details')).toThrow('DETAILS_SERVICE_PORT');
  });

  it('takes the proxy from http_proxy or HTTP_PROXY, and NO_PROXY', () => {
    expect(readProxy({})).toEqual({ httpProxy: undefined, noProxy: '' });
    expect(readProxy({ HTTP_PROXY: 'http://127.0.0.1:15001', NO_PROXY: 'localhost' })).toEqual({
      httpProxy: 'http://127.0.0.1:15001',
      noProxy: 'localhost',
    });
    expect(readProxy({ http_proxy: 'http://a:1', HTTP_PROXY: 'http://b:2' }).httpProxy).toBe('http://a:1');
    expect(() => readProxy({ HTTP_PROXY: 'not a url' })).toThrow('HTTP_PROXY must be a URL');
    expect(() => readProxy({ HTTP_PROXY: 'https://proxy:443' })).toThrow('HTTP_PROXY must be an http:// URL');
  });

  it('reads the log level, defaulting to info, and the whole config at once', () => {
    expect(readLogLevel({})).toBe('info');
    expect(readLogLevel({ LOG_LEVEL: 'WARN' })).toBe('warn');
    expect(readLogLevel({ MIZZEN_LOG_LEVEL: 'silent' })).toBe('silent');
    expect(() => readLogLevel({ LOG_LEVEL: 'loud' })).toThrow('LOG_LEVEL must be one of');
    expect(readServerConfig({ PORT: '1234', LOG_LEVEL: 'debug' })).toEqual({
      listen: { host: '0.0.0.0', port: 1234 },
      logLevel: 'debug',
    });
    expect(readCallerConfig({ HTTP_PROXY: 'http://127.0.0.1:15001' })).toEqual({
      listen: { host: '0.0.0.0', port: 9080 },
      logLevel: 'info',
      proxy: { httpProxy: 'http://127.0.0.1:15001', noProxy: '' },
    });
  });

  it('accepts only non-negative decimal product ids', () => {
    expect(parseProductId('0')).toBe(0);
    expect(parseProductId('42')).toBe(42);
    for (const bad of [undefined, '', 'abc', '-1', '1.5', '1e3', ' 1', '9999999999999999']) {
      expect(parseProductId(bad)).toBeUndefined();
    }
  });
});
