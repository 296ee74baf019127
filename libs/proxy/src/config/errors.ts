/**
 * A resource the proxy cannot apply. Its message becomes the NACK reason that
 * pilot shows in /debug/syncz, so it names the resource and the field.
 */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

export function fail(where: string, reason: string): never {
  throw new ConfigError(`${where}: ${reason}`);
}
