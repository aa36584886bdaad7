/// <reference types="vitest/config" />
// Vite builds the app into dist/, which build.rs embeds in the server binary.
// Preact needs no plugin: the automatic JSX runtime with `jsxImportSource: preact`
// (tsconfig.json) is all it takes.
import { defineConfig } from 'vite';

const backend = process.env.TALKCONNECT_DEV_BACKEND ?? 'http://127.0.0.1:8080';

export default defineConfig({
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2020',
    sourcemap: false,
    chunkSizeWarningLimit: 300,
  },
  // `npm run dev`: the app on Vite's port, the API and sockets proxied to a running server.
  server: {
    proxy: {
      '/api': backend,
      '/healthz': backend,
      '/socket.io': { target: backend, ws: true },
    },
  },
  test: {
    environment: 'happy-dom',
    include: ['test/**/*.test.ts', 'test/**/*.test.tsx'],
  },
});
