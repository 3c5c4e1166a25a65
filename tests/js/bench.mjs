// Descriptor-verification speed in node: our wasm against @noble/ed25519, tweetnacl,
// WebCrypto subtle.verify('Ed25519') and node's crypto.verify (OpenSSL), all on the
// same signature (the first descriptor vector). Prints µs/op (best of 7 rounds) and
// ratios. Not a test: `node tests/js/bench.mjs` after bindings/wasm/build.sh.
import crypto from "node:crypto";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import * as noble from "@noble/ed25519";
import nacl from "tweetnacl";

// noble's sync API needs a SHA-512; give it node's.
noble.hashes.sha512 = (m) => new Uint8Array(crypto.createHash("sha512").update(m).digest());

const root = fileURLToPath(new URL("../..", import.meta.url));
const t = createRequire(import.meta.url)(`${process.env.TILLGATE_PKG ?? `${root}/bindings/wasm/pkg`}/node/tillgate.js`);
const v = JSON.parse(readFileSync(`${root}/tests/vectors/descriptor.json`, "utf8"));
const c = v.cases.find((x) => x.valid);
const [h, p, s] = c.jws.split(".");
const msg = new TextEncoder().encode(`${h}.${p}`);
const sig = new Uint8Array(Buffer.from(s, "base64url"));
const pub = new Uint8Array(Buffer.from(v.jwks.keys[0].x, "base64url"));
const keys = t.TrustedKeys.fromJwks(v.jwks);
const spki = crypto.createPublicKey({ key: Buffer.concat([Buffer.from("302a300506032b6570032100", "hex"), pub]), format: "der", type: "spki" });
const webKey = await crypto.webcrypto.subtle.importKey("raw", pub, { name: "Ed25519" }, false, ["verify"]);

const cases = {
  "tillgate wasm verifyDescriptor": () => t.verifyDescriptor(c.jws, keys, c.now, c.options),
  "tillgate wasm verifyEd25519": () => t.verifyEd25519(pub, msg, sig),
  "node crypto.verify (OpenSSL)": () => crypto.verify(null, msg, spki, sig),
  "WebCrypto subtle.verify": async () => crypto.webcrypto.subtle.verify({ name: "Ed25519" }, webKey, sig, msg),
  "@noble/ed25519 verify": () => noble.verify(sig, msg, pub),
  "tweetnacl sign.detached.verify": () => nacl.sign.detached.verify(msg, sig, pub),
};
const n = Number(process.env.BENCH_N ?? 300);
const best = {};
for (let round = 0; round < 7; round++) {
  for (const [name, f] of Object.entries(cases)) {
    const ok = await f();
    if (ok === false) throw new Error(`${name} did not verify`);
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) await f();
    const us = Number(process.hrtime.bigint() - start) / 1e3 / n;
    best[name] = Math.min(best[name] ?? Infinity, us);
  }
}
const ours = best["tillgate wasm verifyDescriptor"];
for (const [name, us] of Object.entries(best)) {
  console.log(`${name.padEnd(34)} ${us.toFixed(1).padStart(8)} µs  ${(us / ours).toFixed(2)}× ours`);
}
