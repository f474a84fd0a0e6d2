// One build for the gateway to serve: index.html (the web client, at /), vr.html (the VR scene,
// at /vr) and their assets.
// Relative asset paths, so the pages work under whatever prefix an Ingress gives them.
import { defineConfig } from "vite";

export default defineConfig({
  base: "./",
  build: {
    outDir: "dist", emptyOutDir: true, target: "es2022", sourcemap: true,
    rolldownOptions: { input: { index: "index.html", vr: "vr.html" } },
    chunkSizeWarningLimit: 700, // the VR scene's three.js is about 560 kB
  },
});
