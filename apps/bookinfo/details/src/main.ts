import { readServerConfig, runService } from '@mizzen/bookinfo-common';
import { startServer } from './server.js';

await runService('details', () => startServer(readServerConfig(process.env)));
