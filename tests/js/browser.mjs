// Runs the shared vectors in headless Debian Chromium through playwright-core, against
// the web build of the npm package. Prints "N passed, N failed" and exits 1 on failure.
import http from "node:http";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { unlistedFiles } from "./vectors.mjs";

const root = fileURLToPath(new URL("../..", import.meta.url));
const mounts = {
  "/pkg/": process.env.TILLGATE_PKG ?? path.join(root, "bindings/wasm/pkg"),
  "/vectors/": process.env.TILLGATE_VECTORS ?? path.join(root, "tests/vectors"),
  "/js/": path.join(root, "tests/js"),
};
const types = { ".js": "text/javascript", ".mjs": "text/javascript", ".json": "application/json",
  ".wasm": "application/wasm", ".html": "text/html" };

const server = http.createServer((req, res) => {
  const url = new URL(req.url, "http://localhost").pathname;
  const file = url === "/" ? path.join(root, "tests/js/page.html") : (() => {
    const m = Object.keys(mounts).find((p) => url.startsWith(p));
    return m && path.join(mounts[m], path.normalize(url.slice(m.length)).replace(/^(\.\.[/\\])+/, ""));
  })();
  if (!file || !fs.existsSync(file)) { res.writeHead(404).end(); return; }
  res.writeHead(200, { "content-type": types[path.extname(file)] ?? "application/octet-stream" });
  fs.createReadStream(file).pipe(res);
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const base = `http://127.0.0.1:${server.address().port}/`;

let code = 1;
const ctx = await chromium.launchPersistentContext(fs.mkdtempSync("/tmp/chromium-"), {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium", headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await ctx.newPage();
  page.on("pageerror", (e) => console.error("page error:", e.message));
  await page.goto(base);
  await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 120_000 });
  const { passed, skipped = 0, skippedMembers = 0, failures } = await page.evaluate(() => window.__result);
  // The page reads the files of FILES; every file of the vectors directory must be one.
  const unlisted = unlistedFiles(fs.readdirSync(mounts["/vectors/"]));
  if (unlisted.length) failures.push(`vector files the JS runner does not read: ${unlisted.join(", ")}`);
  const ua = await page.evaluate(() => navigator.userAgent);
  for (const f of failures) console.log(`FAIL ${f}`);
  console.log(`(${ua})`);
  console.log(`chromium: ${passed} passed, ${failures.length} failed, ${skipped} skipped, leaving ${skippedMembers} ` +
    `case member(s) unread (${mounts["/pkg/"]})`);
  code = failures.length === 0 && passed > 0 ? 0 : 1;
} finally {
  await ctx.close();
  server.close();
}
process.exit(code);
