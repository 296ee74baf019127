import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const collector = process.env.MIZZEN_COLLECTOR ?? 'http://127.0.0.1:20001';

/** The dashboard: built into dist/dashboard, which the collector serves at `/`. `vite dev` proxies the API. */
export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../dist/dashboard', import.meta.url)),
    emptyOutDir: true,
    sourcemap: true,
    chunkSizeWarningLimit: 1200,
  },
  server: {
    proxy: { '/api': collector, '/healthz': collector, '/metrics': collector },
  },
});
