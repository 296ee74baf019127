import { describe, expect, it } from 'vitest';
import { PROXY_APP_FLAGS } from '../src/agent.js';
import { COMMAND_LINE_FLAGS } from '../src/flags.js';

describe('the command line checked before the proxy loads', () => {
  it("knows exactly the flags runProxyApp parses: the agent's, its libraries', --log-level and --help", () => {
    expect(COMMAND_LINE_FLAGS).toEqual({
      ...PROXY_APP_FLAGS,
      'log-level': { type: 'string' },
      help: { type: 'boolean' },
    });
  });
});
