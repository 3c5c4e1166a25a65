// Verifies compact JWS tokens made by tillgate-server with panva/jose (nobody on the
// project wrote it). stdin: {"jwks": {...}, "tokens": [{"jws", "typ"}]}; stdout:
// {"version", "results": [{"ok", "error"?}]}. jose >= 6.1 knows alg "Ed25519" (RFC 9864).
import { readFileSync } from "node:fs";
import { createLocalJWKSet, jwtVerify, compactVerify } from "jose";

const input = JSON.parse(readFileSync(0, "utf8"));
const keys = createLocalJWKSet(input.jwks);
const version = JSON.parse(readFileSync(new URL("./node_modules/jose/package.json", import.meta.url))).version;
const results = [];
for (const t of input.tokens) {
  try {
    // Signature, alg allow-list and key selection by kid ...
    const { protectedHeader } = await compactVerify(t.jws, keys, { algorithms: ["Ed25519"] });
    // ... then the JWT rules: typ, and nbf/exp where present.
    await jwtVerify(t.jws, keys, { algorithms: ["Ed25519"], typ: t.typ });
    results.push({ ok: true, alg: protectedHeader.alg });
  } catch (e) {
    results.push({ ok: false, error: e.code || e.message });
  }
}
process.stdout.write(JSON.stringify({ version, results }));
