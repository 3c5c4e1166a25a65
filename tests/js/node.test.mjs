// node:test over the nodejs build of the npm package: one test per shared vector.
// Run: node --test tests/js/node.test.mjs (after bindings/wasm/build.sh).
import { test } from "node:test";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { cases, FILES } from "./vectors.mjs";

const root = fileURLToPath(new URL("../..", import.meta.url));
const pkg = process.env.TILLGATE_PKG ?? `${root}/bindings/wasm/pkg`;
const vectorsDir = process.env.TILLGATE_VECTORS ?? `${root}/tests/vectors`;
const tillgate = createRequire(import.meta.url)(`${pkg}/node/tillgate.js`);
const vectors = Object.fromEntries(
  FILES.map((f) => [f, JSON.parse(readFileSync(`${vectorsDir}/${f}.json`, "utf8"))]),
);

for (const c of cases(tillgate, vectors)) test(c.name, c.run);
