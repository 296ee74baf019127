import { runService } from '@mizzen/bookinfo-common';
import { loadConfig } from './config.js';
import { startServer } from './server.js';

await runService('reviews', () => startServer(loadConfig(process.env)));
