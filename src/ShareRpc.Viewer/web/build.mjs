// Builds the viewer's assets (../assets: view.html, viewer.css, viewer.js) from src/ and the protos:
// protoc-gen-es (through buf) → gen/, tsc --noEmit (types), esbuild (one minified IIFE, no source
// map, no timestamps: the same inputs give the same bytes). `--check` builds into a temp dir and
// exits 1 when the committed assets differ; ./test.sh runs it (docs/viewer.md, "Building").
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const web = dirname(fileURLToPath(import.meta.url));
const root = join(web, "..", "..", "..");
const assets = join(web, "..", "assets");
const bin = (name) => join(web, "node_modules", ".bin", name);
const check = process.argv.includes("--check");

rmSync(join(web, "gen"), { recursive: true, force: true });
execFileSync(bin("buf"), ["generate", "--template", relative(root, join(web, "buf.gen.yaml"))], { cwd: root, stdio: "inherit" });
execFileSync(bin("tsc"), ["--project", join(web, "tsconfig.json")], { cwd: web, stdio: "inherit" });

const out = check ? mkdtempSync(join(tmpdir(), "sharerpc-viewer-")) : assets;
await esbuild.build({
  entryPoints: [join(web, "src", "main.ts")],
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2022"],
  platform: "browser",
  charset: "utf8",
  legalComments: "eof",
  sourcemap: false,
  outfile: join(out, "viewer.js"),
  logLevel: "warning",
});
await esbuild.build({
  entryPoints: [join(web, "src", "viewer.css")],
  bundle: true,
  minify: true,
  charset: "utf8",
  outfile: join(out, "viewer.css"),
  logLevel: "warning",
});
cpSync(join(web, "src", "view.html"), join(out, "view.html"));

if (check) {
  const differ = readdirSync(out).filter((f) => {
    try {
      return !readFileSync(join(out, f)).equals(readFileSync(join(assets, f)));
    } catch {
      return true;
    }
  });
  rmSync(out, { recursive: true, force: true });
  if (differ.length > 0) {
    console.error(`viewer: the committed assets differ from a fresh build of their sources: ${differ.join(", ")}`);
    console.error("viewer: run `npm ci && npm run build` in src/ShareRpc.Viewer/web and commit src/ShareRpc.Viewer/assets");
    process.exit(1);
  }
  console.log("viewer: the committed assets match a fresh build");
} else {
  console.log(`viewer: built ${readdirSync(out).join(", ")} in ${relative(root, out)}`);
}
