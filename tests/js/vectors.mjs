// Every shared vector in tests/vectors/*.json as a named check against the tillgate
// npm package. Used by node (node.test.mjs, node:test) and by headless Chromium
// (browser.mjs + page.html). Mirrors core/tests/vectors.rs.

export const FILES = [
  "ed25519", "api_key", "url_token", "activation", "transaction", "descriptor",
  "receipt", "dynamic_key", "server_time",
];

const unhex = (s) => Uint8Array.from(s.match(/../g) ?? [], (h) => parseInt(h, 16));

class AssertionError extends Error {}

function eq(actual, expected, what) {
  const a = JSON.stringify(sortKeys(actual));
  const e = JSON.stringify(sortKeys(expected));
  if (a !== e) throw new AssertionError(`${what}: expected ${e}, got ${a}`);
}

function sortKeys(v) {
  if (v instanceof Uint8Array) return Array.from(v);
  if (Array.isArray(v)) return v.map(sortKeys);
  if (v && typeof v === "object") {
    return Object.fromEntries(Object.keys(v).sort().map((k) => [k, sortKeys(v[k])]));
  }
  return v;
}

function expectErr(name, code, fn) {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof Error)) throw new AssertionError(`${name}: threw a non-Error ${e}`);
    if (e.code !== code) throw new AssertionError(`${name}: expected ${code}, got ${e.code}: ${e.message}`);
    return e;
  }
  throw new AssertionError(`${name}: expected ${code}, got success`);
}

function list(v, key) {
  const l = v[key];
  if (!Array.isArray(l) || l.length === 0) throw new AssertionError(`no cases under ${key}`);
  return l;
}

const fieldsOf = (e) => (e.fields ?? []).map((f) => ({ field: f.field, code: f.code }));

/**
 * Returns [{name, run, skip}] for every vector; `v` maps file name to parsed JSON.
 * A case whose functions the package under test leaves out (the verify-only "lite"
 * build has no signing and no Argon2) gets `skip`, naming them; runners count those as
 * skipped, never as passed.
 */
export function cases(t, v) {
  const out = [];
  const add = (name, run, needs = []) => {
    const missing = needs.filter((f) => t[f] === undefined);
    out.push({ name, run, skip: missing.length ? `not in this build: ${missing.join(", ")}` : undefined });
  };
  const SIGN = ["SigningKey"];

  for (const c of list(v.ed25519, "cases")) {
    add(`ed25519: ${c.name}`, () => {
      const [pk, msg, sig] = [unhex(c.publicKey), unhex(c.message), unhex(c.signature)];
      if (c.valid) {
        t.verifyEd25519(pk, msg, sig);
      } else {
        expectErr(c.name, c.error, () => t.verifyEd25519(pk, msg, sig));
      }
    });
    if (c.valid) {
      add(`ed25519 signing: ${c.name}`, () => {
        const key = t.SigningKey.fromSeed(unhex(c.secretKey));
        eq(key.publicKey(), unhex(c.publicKey), "public key");
        eq(key.signRaw(unhex(c.message)), unhex(c.signature), "signature");
      }, SIGN);
    }
  }

  for (const c of list(v.api_key, "cases")) {
    add(`api_key: ${c.name}`, () => {
      if (c.valid) {
        eq(t.validateApiKey(c.key), c.key, "key");
      } else {
        const e = expectErr(c.name, c.error, () => t.validateApiKey(c.key));
        if ("position" in c) {
          eq(e.position, c.position, "position");
          eq(e.character, c.char, "character");
        }
      }
    });
  }
  add("api_key: generated keys use their alphabet", () => {
    const a = t.generateApiKey();
    eq(a.length, 40, "default length");
    if (![...a].every((ch) => v.api_key.alphabet.includes(ch))) throw new AssertionError(a);
    const b = t.generateApiKey(256, "urlSafe");
    if (![...b].every((ch) => v.api_key.urlSafeAlphabet.includes(ch))) throw new AssertionError(b);
    eq(t.validateApiKey(b), b, "valid");
    expectErr("generate 19", "api_key_too_short", () => t.generateApiKey(19));
  });

  for (const c of list(v.url_token, "cases")) {
    add(`url_token: ${c.name}`, () => {
      if (c.valid) {
        const tok = t.parseUrlToken(c.path);
        eq(tok, c.expected, "parsed");
        const encoded = t.encodeUrlToken(tok);
        eq(encoded, c.encoded, "encoded");
        eq(t.parseUrlToken(encoded), tok, "round trip");
      } else {
        const e = expectErr(c.name, c.error, () => t.parseUrlToken(c.path));
        eq(e.position, c.position, "position");
      }
    });
  }

  for (const c of list(v.activation, "cases")) {
    add(`activation: ${c.name}`, () => {
      const call = () => t.validateActivationRequest(c.request, c.corporateIdRule);
      if (c.valid) {
        const ok = call();
        const { corporateId, country, validFrom, validTo } = ok;
        eq({ corporateId, country, validFrom, validTo }, c.expected, "normalised");
      } else {
        const e = expectErr(c.name, c.error, call);
        eq(fieldsOf(e), c.fields, "fields");
      }
    });
  }

  for (const c of list(v.transaction, "cases")) {
    add(`transaction: ${c.name}`, () => {
      const tx = t.transactionFromJson(JSON.stringify(c.transaction));
      if (c.valid) {
        t.validateTransaction(tx);
        eq(t.transactionCanonicalJson(tx), c.canonical, "canonical");
        eq(t.transactionHash(tx), c.hash, "hash");
      } else {
        const e = expectErr(c.name, c.error, () => t.validateTransaction(tx));
        eq(fieldsOf(e), c.fields, "fields");
      }
    });
  }
  for (const c of list(v.transaction, "unparsable")) {
    add(`transaction unparsable: ${c.name}`, () => {
      expectErr(c.name, "invalid_argument", () => t.transactionFromJson(c.json));
    });
  }

  const dkeys = t.TrustedKeys.fromJwks(v.descriptor.jwks);
  for (const c of list(v.descriptor, "cases")) {
    add(`descriptor: ${c.name}`, () => {
      const call = () => t.verifyDescriptor(c.jws, dkeys, c.now, c.options);
      if (c.valid) {
        eq(call().claims, c.expected, "claims");
      } else {
        expectErr(c.name, c.error, call);
      }
    });
  }
  for (const c of list(v.descriptor, "jwksCases")) {
    add(`jwks: ${c.name}`, () => {
      const call = () => t.TrustedKeys.fromJwksJson(JSON.stringify(c.jwks));
      if (c.valid) call();
      else expectErr(c.name, c.error, call);
    });
  }
  for (const c of list(v.descriptor, "signing")) {
    add(`descriptor signing: ${c.name}`, () => {
      const key = t.SigningKey.fromSeed(unhex(c.seed));
      eq(key.kid, c.kid, "kid");
      eq(t.signDescriptor(c.claims, key), c.jws, "jws");
    }, [...SIGN, "signDescriptor"]);
  }

  const rkeys = t.TrustedKeys.fromJwks(v.receipt.jwks);
  for (const c of list(v.receipt, "cases")) {
    add(`receipt: ${c.name}`, () => {
      const call = () => t.verifyReceiptChain(c.receipts, rkeys, c.previous ?? undefined);
      if (c.valid) {
        eq(call().length, c.count, "count");
      } else {
        const e = expectErr(c.name, c.error, call);
        eq(e.index, c.index, "index");
      }
    });
  }
  for (const c of list(v.receipt, "witnessed")) {
    add(`receipt witnessed: ${c.name}`, () => {
      const call = () => t.verifyReceiptChainWitnessed(c.receipts, rkeys, c.witness);
      if (c.valid) eq(call().length, c.count, "count");
      else expectErr(c.name, c.error, call);
    });
  }
  for (const c of list(v.receipt, "advance")) {
    add(`receipt advance: ${c.name}`, () => {
      const call = () => t.advancesWitness(c.current ?? undefined, c.received, rkeys);
      if (c.valid) eq(call(), c.advances, "advances");
      else expectErr(c.name, c.error, call);
    });
  }
  list(v.receipt, "links").forEach((l, i) => {
    add(`receipt link ${i}`, () => eq(t.receiptLink(l.receipt), l.link, "link"));
  });

  const params = (p) => ({ memoryKib: p.memoryKib, iterations: p.iterations, parallelism: p.parallelism });
  list(v.dynamic_key, "derive").forEach((c, i) => {
    add(`dynamic_key derive ${i}: ${c.login}`, () => {
      const pair = t.deriveDynamicKeyPair(c.system, c.login, c.password, params(c.params));
      eq(pair.seed(), unhex(c.seed), "seed");
      eq(pair.publicKey(), unhex(c.publicKey), "public key");
    }, ["deriveDynamicKeyPair"]);
  });
  list(v.dynamic_key, "create").forEach((c, i) => {
    add(`dynamic_key create ${i}`, () => {
      const pair = t.DynamicKeyPair.fromSeed(c.system, c.login, unhex(c.seed));
      eq(t.createDynamicApiKeyWithNonce(pair, c.now, unhex(c.nonce)), c.key, "key");
    }, ["DynamicKeyPair", "createDynamicApiKeyWithNonce"]);
  });
  for (const c of list(v.dynamic_key, "deriveRefused")) {
    add(`dynamic_key derive refused: ${c.name}`, () => {
      expectErr(c.name, c.error, () => t.deriveDynamicKeyPair(c.system, c.login, c.password, params(c.params)));
    }, ["deriveDynamicKeyPair"]);
  }
  for (const c of list(v.dynamic_key, "verify")) {
    add(`dynamic_key verify: ${c.name}`, () => {
      const call = () => t.verifyDynamicApiKey(c.key, unhex(c.publicKey), c.system, c.now, c.windowSecs);
      if (c.valid) {
        const got = call();
        eq({ login: got.login, issuedAt: got.issuedAt, nonce: got.nonce },
          { login: c.expected.login, issuedAt: c.expected.issuedAt, nonce: unhex(c.expected.nonce) }, "claims");
      } else {
        expectErr(c.name, c.error, call);
      }
    });
  }

  const skeys = t.TrustedKeys.fromJwks(v.server_time.jwks);
  for (const c of list(v.server_time, "cases")) {
    add(`server_time: ${c.name}`, () => {
      const call = () => t.verifyServerTime(c.jws, skeys, c.expectedNonce ?? undefined);
      if (c.valid) eq(call().iat, c.iat, "iat");
      else expectErr(c.name, c.error, call);
    });
  }

  add("smoke: generated signing key signs a descriptor the app verifies", () => {
    const key = t.generateSigningKey();
    const keys = new t.TrustedKeys();
    eq(keys.addRawWithThumbprint(key.publicKey()), key.kid, "kid");
    const claims = v.descriptor.signing[0].claims;
    const ok = t.verifyDescriptor(t.signDescriptor(claims, key), keys, claims.nbf);
    eq(ok.kid, key.kid, "kid");
    eq(ok.claims, claims, "claims");
  }, ["generateSigningKey", "signDescriptor"]);
  add("smoke: createDynamicApiKey round trip and argument errors", () => {
    const pair = t.deriveDynamicKeyPair("1,2,3,4", "anna", "pw", { memoryKib: 64, iterations: 1, parallelism: 1 });
    const key = t.createDynamicApiKey(pair, 1_700_000_000);
    eq(t.verifyDynamicApiKey(key, pair.publicKey(), "1,2,3,4", 1_700_000_010).login, "anna", "login");
    expectErr("nonce length", "invalid_argument", () => t.createDynamicApiKeyWithNonce(pair, 1, new Uint8Array(3)));
    expectErr("fractional now", "invalid_argument", () => t.createDynamicApiKey(pair, 1.5));
  }, ["deriveDynamicKeyPair", "createDynamicApiKey"]);
  return out;
}
