// make web: bundle web/src into gateway/kglab_gateway/web (minified, the graph library in a
// chunk of its own that only the graph views load) and record what it was built from.
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import * as esbuild from "esbuild";

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "..", "gateway", "kglab_gateway", "web");

/** Every file the bundle is made from; tests/unit/test_web_bundle.py hashes the same list. */
function sources() {
  const walk = (dir) =>
    readdirSync(dir).flatMap((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? walk(path) : [path];
    });
  return [...walk(join(here, "src")), ...["build.mjs", "package.json", "package-lock.json"].map((n) => join(here, n))]
    .map((path) => relative(here, path).split("\\").join("/"))
    .sort();
}

function sourceHash() {
  const hash = createHash("sha256");
  for (const name of sources()) {
    hash.update(name);
    hash.update("\0");
    hash.update(readFileSync(join(here, name)));
    hash.update("\0");
  }
  return hash.digest("hex");
}

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await esbuild.build({
  entryPoints: { app: join(here, "src", "main.js"), "app-style": join(here, "src", "app.css") },
  bundle: true,
  splitting: true,
  format: "esm",
  minify: true,
  target: ["chrome109", "firefox115", "safari16"],
  outdir: out,
  chunkNames: "chunk-[hash]",
  legalComments: "linked",
  logLevel: "warning",
});
// One stylesheet name the page links to.
copyFileSync(join(out, "app-style.css"), join(out, "app.css"));
rmSync(join(out, "app-style.css"));
copyFileSync(join(here, "src", "index.html"), join(out, "index.html"));

const files = {};
for (const name of readdirSync(out).sort()) {
  const bytes = readFileSync(join(out, name));
  files[name] = { bytes: bytes.length, sha256: createHash("sha256").update(bytes).digest("hex") };
}
const manifest = { source_sha256: sourceHash(), sources: sources(), files };
writeFileSync(join(out, "build.json"), `${JSON.stringify(manifest, null, 2)}\n`);
for (const [name, { bytes }] of Object.entries(files)) console.log(`${name.padEnd(28)} ${bytes} bytes`);
