// Writes the wasm benchmark's fixture (the same descriptor, key and time as
// bench/src/micro.rs) using a package that can sign (full or core), so bench.mjs can run
// without the Rust bench driver:
//
//   node bench/wasm/fixture.mjs PKG_DIR > fixture.json
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);
const tg = require(path.resolve(process.argv[2], "node", "tillgate.js"));
const key = tg.SigningKey.fromSeed(new Uint8Array(32).fill(0xa1));
const jws = tg.signDescriptor(
  {
    iss: "https://tillgate.example", sub: "TG-7Q2M-K4PX", iat: 1735686000, nbf: 1735689600,
    exp: 1767225600, ver: 1, activationId: "act_01HZX4", cashRegisterName: "Kassa 1",
    deviceId: "a1b2c3d4e5f60718", corporateId: "556036-0793", country: "SE",
    applicationPackage: "com.example.pos", features: ["sales", "refunds"], status: "approved",
    extras: { shop: 7, lane: "A" },
  },
  key,
);
const dot = jws.lastIndexOf(".");
console.log(JSON.stringify({
  jws,
  jwksJson: JSON.stringify({ keys: [key.publicJwk()] }),
  now: 1751328000,
  messageB64: Buffer.from(jws.slice(0, dot)).toString("base64url"),
  signatureB64: jws.slice(dot + 1),
  publicKeyB64: Buffer.from(key.publicKey()).toString("base64url"),
}));
