// A CommonJS node app (TypeScript with `module: node16`) importing the npm package by
// its name: the `node` condition of the package's exports must bring the CommonJS
// typings of the node build, whose module has no default `init`. Compiled with
// `tsc --noEmit` (scripts/test-wasm.sh), never run.
import { Client, TrustedKeys, validateApiKey } from "tillgate";

export function app(jwks: string, apiKey: string): Client {
  validateApiKey(apiKey);
  const keys: TrustedKeys = TrustedKeys.fromJwksJson(jwks);
  return new Client({ baseUrl: "https://pos.example", deviceId: "till-7" }, keys);
}
