import { defineConfig } from "vite";

// No React plugin: esbuild compiles TSX itself (automatic runtime), which is all we need.
export default defineConfig({
  esbuild: { jsx: "automatic" },
  build: {
    // crates/site's build script passes --outDir (its OUT_DIR) and embeds what lands there.
    assetsDir: "assets",
    sourcemap: false,
    chunkSizeWarningLimit: 1024,
  },
});
