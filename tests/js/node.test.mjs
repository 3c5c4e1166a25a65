// node:test over the nodejs build of the npm package: one test per shared vector.
// Run: node --test tests/js/node.test.mjs (after bindings/wasm/build.sh).
import { test } from "node:test";
import { readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { cases, FILES, LEFT_OUT, skipProblems, unlistedFiles } from "./vectors.mjs";

const root = fileURLToPath(new URL("../..", import.meta.url));
const pkg = process.env.TILLGATE_PKG ?? `${root}/bindings/wasm/pkg`;
const vectorsDir = process.env.TILLGATE_VECTORS ?? `${root}/tests/vectors`;
const tillgate = createRequire(import.meta.url)(`${pkg}/node/tillgate.js`);
const vectors = Object.fromEntries(
  FILES.map((f) => [f, JSON.parse(readFileSync(`${vectorsDir}/${f}.json`, "utf8"))]),
);

const pkgName = JSON.parse(readFileSync(`${pkg}/package.json`, "utf8")).name;

const all = cases(tillgate, vectors);
for (const c of all) test(c.name, c.skip ? { skip: c.skip } : {}, c.run);
// Every file of the vectors directory is one the cases read (FILES).
test("every vector file is listed in FILES", () => {
  const unlisted = unlistedFiles(readdirSync(vectorsDir));
  if (unlisted.length) throw new Error(`vector files the JS runner does not read: ${unlisted.join(", ")}`);
});
// A build without some functions (the "lite" package) skips their vectors, counted; the
// skips must be exactly those its build leaves out (none for the full package).
test(`skips: exactly what ${pkgName} leaves out`, () => {
  const problems = skipProblems(tillgate, all, pkgName);
  if (problems.length) throw new Error(`${problems.length} wrong skip(s):\n${problems.join("\n")}`);
});
const skipped = all.filter((c) => c.skip).length;
const skippedMembers = all.reduce((n, c) => n + c.skippedMembers, 0);
console.log(`vectors: ${all.length - skipped} run, ${skipped} skipped, leaving ${skippedMembers} case member(s) ` +
  `unread (${pkgName}, which leaves out ` +
  `${(LEFT_OUT[pkgName] ?? ["?"]).join(", ") || "nothing"}; ${pkg})`);
