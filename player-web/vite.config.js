// The page is served at /live and its assets under /player/ (see server/src/http/player.rs),
// so every asset URL the build writes starts with /player/.
import { defineConfig } from 'vite';
import mpegtsAv1Fix from './build-plugins/mpegts-av1-fix.js';

// `npm run dev` proxies the API and the media to a local `onair serve`.
const onair = process.env.ONAIR_HTTP || 'http://127.0.0.1:8080';

export default defineConfig({
  base: '/player/',
  plugins: [mpegtsAv1Fix()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: true,
    chunkSizeWarningLimit: 1024,
  },
  server: {
    proxy: {
      '/api': onair,
      '^/[^/]+/[^/]+\\.(flv|m3u8|ts)$': onair,
    },
  },
  test: {
    include: ['tests/unit/**/*.test.js'],
    environment: 'node',
  },
});
