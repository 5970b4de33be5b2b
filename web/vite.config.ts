/// <reference types="vitest/config" />
import { fileURLToPath } from "node:url";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The build goes into the Python package, which `opsflow server` serves at `/`.
const outDir = fileURLToPath(new URL("../src/opsflow/web_dist", import.meta.url));

export default defineConfig({
  plugins: [react()],
  build: { outDir, emptyOutDir: true, chunkSizeWarningLimit: 800 },
  // `npm run dev` / `vite preview` talk to a server at OPSFLOW_URL (default: opsflow server).
  server: { proxy: { "/api": process.env.OPSFLOW_URL ?? "http://127.0.0.1:8321" } },
  preview: { proxy: { "/api": process.env.OPSFLOW_URL ?? "http://127.0.0.1:8321" } },
  test: {
    environment: "jsdom",
    globals: true,
    testTimeout: 20_000,
    setupFiles: ["./src/test/setup.ts"],
    include: ["src/**/*.test.{ts,tsx}"],
  },
});
