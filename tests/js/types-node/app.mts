// The same from an ES module in node (`module: node16`): the `node` condition applies
// to `import` too, so it gets the node build's typings (no default `init`).
import { Client, TrustedKeys, validateApiKey } from "tillgate";

export function app(jwks: string, apiKey: string): Client {
  validateApiKey(apiKey);
  return new Client({ baseUrl: "https://pos.example" }, TrustedKeys.fromJwksJson(jwks));
}
