// Build config: JSX through esbuild with Preact's runtime (no Babel, no framework plugin).
// `VIGIL_UI` points the dev server's /api proxy at a running ui-server.
import { defineConfig } from 'vite';

const target = process.env.VIGIL_UI ?? 'http://127.0.0.1:8080';

export default defineConfig({
  esbuild: { jsx: 'automatic', jsxImportSource: 'preact' },
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', sourcemap: true },
  server: {
    proxy: { '/api': { target, ws: true }, '/healthz': target },
  },
});
