// Descriptor verification in node: Tillgate's wasm package against @noble/ed25519,
// tweetnacl, WebCrypto subtle.verify('Ed25519') and node's crypto.verify (OpenSSL), on
// the same signature; plus the shipped sizes. Prints one JSON object.
//
//   node bench/wasm/bench.mjs FIXTURE.json PKG_DIR [MS_PER_ROUND] [ROUNDS]
//
// PKG_DIR is the npm package (with node/ and web/ builds) or one build directory.
// BENCH_WASM_CLIENT_PKG may name a core+client build for the second size figure.
// BENCH_WASM_EXTRA="label=DIR,label=DIR" adds other builds as contenders in the same
// alternating rounds (ns["wasm:label"], size["wasm:label"]), to compare build choices
// against the same baselines; `verifyEd25519` of the main package is timed as
// ns.wasmEd25519 (the signature check alone, no JWS or JSON).
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import crypto from "node:crypto";

const [fixturePath, pkgDir, msArg, roundsArg] = process.argv.slice(2);
const ms = Number(msArg ?? 300);
const rounds = Number(roundsArg ?? 5);
const fx = JSON.parse(fs.readFileSync(fixturePath, "utf8"));
const b64 = (s) => new Uint8Array(Buffer.from(s, "base64url"));
const msg = b64(fx.messageB64);
const sig = b64(fx.signatureB64);
const pub = b64(fx.publicKeyB64);
const require = createRequire(import.meta.url);
const result = { ns: {}, errors: {}, size: {} };

function firstExisting(...candidates) {
  return candidates.find((p) => fs.existsSync(p));
}

// ---- contenders --------------------------------------------------------------------
const contenders = {};

const nodeEntry = firstExisting(path.join(pkgDir, "node", "tillgate.js"), path.join(pkgDir, "tillgate.js"));
if (!nodeEntry) throw new Error(`no node build in ${pkgDir}`);
const tg = require(path.resolve(nodeEntry));
const trusted = tg.TrustedKeys.fromJwksJson(fx.jwksJson);
contenders.wasm = () => tg.verifyDescriptor(fx.jws, trusted, fx.now) !== undefined;
contenders.wasmEd25519 = () => (tg.verifyEd25519(pub, msg, sig), true);
const extra = (process.env.BENCH_WASM_EXTRA ?? "").split(",").filter(Boolean).map((e) => e.split("="));
for (const [label, dir] of extra) {
  const entry = firstExisting(path.join(dir, "node", "tillgate.js"), path.join(dir, "tillgate.js"));
  const m = require(path.resolve(entry));
  const keys = m.TrustedKeys.fromJwksJson(fx.jwksJson);
  contenders[`wasm:${label}`] = () => m.verifyDescriptor(fx.jws, keys, fx.now) !== undefined;
}

try {
  const ed = await import("@noble/ed25519");
  const { sha512 } = await import("@noble/hashes/sha2.js");
  if (ed.hashes) ed.hashes.sha512 = sha512; // v3
  else ed.etc.sha512Sync = (...m) => sha512(ed.etc.concatBytes(...m)); // v2
  contenders.noble = () => ed.verify(sig, msg, pub);
} catch (e) {
  result.errors.noble = String(e.message ?? e);
}

try {
  const nacl = (await import("tweetnacl")).default;
  contenders.tweetnacl = () => nacl.sign.detached.verify(msg, sig, pub);
} catch (e) {
  result.errors.tweetnacl = String(e.message ?? e);
}

try {
  const key = await crypto.webcrypto.subtle.importKey("raw", pub, { name: "Ed25519" }, false, ["verify"]);
  contenders.webcrypto = async () => crypto.webcrypto.subtle.verify("Ed25519", key, sig, msg);
  contenders.webcrypto.async = true;
} catch (e) {
  result.errors.webcrypto = String(e.message ?? e);
}

try {
  const key = crypto.createPublicKey({ key: { kty: "OKP", crv: "Ed25519", x: fx.publicKeyB64 }, format: "jwk" });
  contenders.nodecrypto = () => crypto.verify(null, msg, key, sig);
} catch (e) {
  result.errors.nodecrypto = String(e.message ?? e);
}

// Every contender must accept the fixture before it is timed.
for (const [name, f] of Object.entries(contenders)) {
  let ok;
  try {
    ok = await f();
  } catch (e) {
    ok = false;
    result.errors[name] = String(e.message ?? e);
  }
  if (!ok) {
    result.errors[name] ??= "rejected the fixture";
    delete contenders[name];
  }
}

// BENCH_WASM_CLOCK=cpu times with the process's CPU time instead of the wall clock: on
// a machine shared with other work, time spent waiting for a core is then not counted.
const cpuClock = process.env.BENCH_WASM_CLOCK === "cpu";
const clockNs = cpuClock
  ? () => {
      const u = process.cpuUsage();
      return BigInt(u.user + u.system) * 1000n;
    }
  : () => process.hrtime.bigint();
result.clock = cpuClock ? "cpu" : "wall";

async function nsPerOp(f, budgetMs) {
  let ops = 0;
  let batch = 1;
  const start = clockNs();
  const limit = BigInt(Math.round(budgetMs * 1e6));
  for (;;) {
    if (f.async) for (let i = 0; i < batch; i++) await f();
    else for (let i = 0; i < batch; i++) f();
    ops += batch;
    const el = clockNs() - start;
    if (el >= limit) return Number(el) / ops;
    batch = Math.min(batch * 2, 4096);
  }
}

const samples = Object.fromEntries(Object.keys(contenders).map((k) => [k, []]));
for (const [, f] of Object.entries(contenders)) await nsPerOp(f, Math.max(ms / 2, 20)); // warm-up
for (let r = 0; r < rounds; r++) {
  const names = Object.keys(contenders);
  if (r % 2) names.reverse();
  for (const n of names) samples[n].push(await nsPerOp(contenders[n], ms));
}
const median = (v) => v.slice().sort((a, b) => a - b)[Math.floor(v.length / 2)];
for (const [n, v] of Object.entries(samples)) result.ns[n] = median(v);
// Best round of each: on a shared machine the least disturbed round is the steadier
// figure for comparing builds.
result.best = Object.fromEntries(Object.entries(samples).map(([n, v]) => [n, Math.min(...v)]));

// ---- sizes -------------------------------------------------------------------------
function sizeOf(dir) {
  const d = firstExisting(path.join(dir, "web"), dir);
  const files = ["tillgate_bg.wasm", "tillgate.js"].map((f) => path.join(d, f)).filter((f) => fs.existsSync(f));
  if (!files.some((f) => f.endsWith(".wasm"))) return { skip: `no .wasm in ${d}` };
  let raw = 0;
  let gzip = 0;
  for (const f of files) {
    const b = fs.readFileSync(f);
    raw += b.length;
    gzip += zlib.gzipSync(b, { level: 9 }).length;
  }
  return { raw, gzip, files: files.map((f) => `${path.relative(process.cwd(), f)}`).join(" + ") };
}
// Core alone: BENCH_WASM_CORE_PKG (scripts/bench.sh: the verify-only lite package),
// else the package under test.
result.size.core = sizeOf(process.env.BENCH_WASM_CORE_PKG || pkgDir);
for (const [label, dir] of extra) result.size[`wasm:${label}`] = sizeOf(dir);
const clientPkg = process.env.BENCH_WASM_CLIENT_PKG;
result.size.client = clientPkg
  ? sizeOf(clientPkg)
  : { skip: process.env.BENCH_WASM_CLIENT_SKIP ?? "no core+client wasm build (BENCH_WASM_CLIENT_PKG unset)" };

console.log(JSON.stringify(result));
