import { readServerConfig, runService } from '@mizzen/bookinfo-common';
import { startServer } from './server.js';

await runService('ratings', () => startServer(readServerConfig(process.env)));
