// Every shared vector in tests/vectors/*.json as a named check against the tillgate
// npm package. Used by node (node.test.mjs, node:test) and by headless Chromium
// (browser.mjs + page.html). Mirrors core/tests/vectors.rs.

export const FILES = [
  "ed25519", "api_key", "url_token", "activation", "transaction", "product", "descriptor",
  "receipt", "dynamic_key", "server_time",
];

// Members of a vector file, or of its cases, written for people, which no case reads (a
// case's name too, see `tracked`). The Rust, Kotlin, Swift and Python runners allow the
// same names.
export const FOR_PEOPLE = ["description", "comment"];

/**
 * The files of the vectors directory (`names`: its listing) that FILES leaves out, which
 * no runner here would read: must be none. The node and Chromium runners check the
 * directory with it, and `cases` checks that it read every file of FILES.
 */
export function unlistedFiles(names) {
  return names.filter((n) => n.endsWith(".json")).map((n) => n.slice(0, -".json".length))
    .filter((f) => !FILES.includes(f)).sort();
}

// What each build of the npm package leaves out (bindings/wasm/build.sh, WASM_VARIANT),
// by the name in its package.json. A runner requires that exactly the cases needing one
// of these skip: none for the full package, the signing, Argon2 and client cases for
// lite. A package name not listed here fails.
const SIGNING = ["SigningKey", "generateSigningKey", "signDescriptor", "DynamicKeyPair",
  "createDynamicApiKey", "createDynamicApiKeyWithNonce"];
const ARGON2 = ["deriveDynamicKeyPair"];
const CLIENT = ["Client", "Outbox"];
export const LEFT_OUT = {
  "tillgate": [],
  "tillgate-core": [...CLIENT],
  "tillgate-lite": [...SIGNING, ...ARGON2, ...CLIENT],
  "tillgate-lite-client": [...SIGNING, ...ARGON2],
};

/**
 * Problems with the skips of `all` (from `cases`) for the package named `pkgName`
 * (empty when right): every function the build leaves out is absent from `t`, nothing
 * else a case needs is absent, and exactly the cases needing a left-out function skip.
 */
export function skipProblems(t, all, pkgName) {
  const leftOut = LEFT_OUT[pkgName];
  if (leftOut === undefined) {
    return [`unknown package ${JSON.stringify(pkgName)}: say what it leaves out in LEFT_OUT (tests/js/vectors.mjs)`];
  }
  const problems = [];
  for (const f of leftOut) {
    if (t[f] !== undefined) problems.push(`${pkgName} should leave out ${f}, but has it`);
  }
  for (const c of all) {
    const expected = c.needs.some((f) => leftOut.includes(f));
    if (expected && !c.skip) problems.push(`${c.name}: runs, but ${pkgName} leaves out one of ${c.needs.join(", ")}`);
    if (!expected && c.skip) problems.push(`${c.name}: skipped (${c.skip}), but ${pkgName} must have it`);
  }
  return problems;
}

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
    // Core's errors never carry what only a server's answer has.
    for (const k of ["httpStatus", "retryAfterMs", "transient", "auth"]) {
      if (k in e) throw new AssertionError(`${name}: a core error has ${k}`);
    }
    return e;
  }
  throw new AssertionError(`${name}: expected ${code}, got success`);
}

/**
 * A case of a vector file (`at` names it) that records which of its members are read,
 * and of the objects inside it (`expected.login`): one passed whole (to the package, to
 * JSON.stringify, to eq) is read whole, one whose members are picked is read as far as
 * they are. `unreadIn` lists what was not read.
 */
function tracked(value, read, path = "") {
  return new Proxy(value, {
    get: (o, k) => {
      if (typeof k === "string") read.add(path + k);
      const m = o[k];
      return m !== null && typeof m === "object" && !Array.isArray(m) ? tracked(m, read, `${path}${k}.`) : m;
    },
  });
}

/** The members of `value` not in `read`, but those for people: FOR_PEOPLE and a case's name. */
function unreadIn(value, read, path = "") {
  return Object.keys(value).flatMap((k) => {
    const m = value[k];
    if (!read.has(path + k)) return FOR_PEOPLE.includes(k) || (path === "" && k === "name") ? [] : [path + k];
    return m !== null && typeof m === "object" && !Array.isArray(m) ? unreadIn(m, read, `${path}${k}.`) : [];
  });
}

const fieldsOf = (e) => (e.fields ?? []).map((f) => ({ field: f.field, code: f.code }));

/**
 * Returns [{name, run, needs, skip}] for every vector; `vectors` maps file name to
 * parsed JSON. A case whose functions (`needs`) the package under test leaves out (the
 * verify-only "lite" build has no signing, no Argon2, no client) gets `skip`, naming
 * them; runners count those as skipped, never as passed, and check them against
 * LEFT_OUT with `skipProblems`.
 */
export function cases(t, vectors) {
  // Which files, and which of their top-level members, the cases below read while they
  // are built (checked by the last two cases): file name -> set of members.
  const read = new Map();
  const v = new Proxy(vectors, {
    get: (o, f) => {
      if (!read.has(f)) read.set(f, new Set());
      const members = read.get(f);
      const file = o[f];
      if (file === null || typeof file !== "object" || Array.isArray(file)) return file;
      return new Proxy(file, { get: (m, k) => { members.add(k); return m[k]; } });
    },
  });
  // The cases under `key` of file `f`, each recording which of its members are read
  // (`tracked`). Every one is given to `add` with the checks that read it; when the last
  // of those that run is done, every member of the case must have been read, but those
  // for people and those named as read only by a check this build leaves out (counted,
  // and listed in that check's skip): a case that gains a member (an `error` where none
  // was, a new expected value) fails until a check reads it. The Rust, Kotlin, Swift and
  // Python runners have the same guard.
  const tracking = new Map();
  const list = (f, key) => {
    const l = v[f][key];
    if (!Array.isArray(l) || l.length === 0) throw new AssertionError(`no cases under ${key}`);
    return l.map((c, i) => {
      const s = { at: `tests/vectors/${f}.json ${key}[${i}]${"name" in c ? ` ${JSON.stringify(c.name)}` : ""}`, c, read: new Set(),
        skipped: [], checks: 0, ran: 0 };
      const p = tracked(c, s.read);
      tracking.set(p, s);
      return p;
    });
  };
  const out = [];
  // `c`: the case the check reads; `onlyHere`: members of it only this check reads,
  // skipped with it when this build leaves it out.
  const add = (name, run, needs = [], c = undefined, onlyHere = []) => {
    const missing = needs.filter((f) => t[f] === undefined);
    let skip = missing.length ? `not in this build: ${missing.join(", ")}` : undefined;
    const s = tracking.get(c);
    if (s && skip && onlyHere.length) {
      s.skipped.push(...onlyHere);
      skip += `; ${s.at}: ${onlyHere.join(", ")} not read`;
    } else if (s && !skip) {
      s.checks++;
      const check = run;
      run = () => {
        check();
        if (++s.ran < s.checks) return;
        const unread = unreadIn(s.c, s.read).filter((m) => !s.skipped.includes(m));
        if (unread.length) throw new AssertionError(`${s.at}: member(s) ${unread.join(", ")} read by no JS check`);
      };
    }
    if (s) s.given = true;
    out.push({ name, run, needs, skip, skippedMembers: skip && s ? onlyHere.length : 0 });
  };
  const SIGN = ["SigningKey"];

  for (const c of list("ed25519", "cases")) {
    add(`ed25519: ${c.name}`, () => {
      const [pk, msg, sig] = [unhex(c.publicKey), unhex(c.message), unhex(c.signature)];
      if (c.valid) {
        t.verifyEd25519(pk, msg, sig);
      } else {
        expectErr(c.name, c.error, () => t.verifyEd25519(pk, msg, sig));
      }
    }, [], c);
    if (c.valid) {
      add(`ed25519 signing: ${c.name}`, () => {
        const key = t.SigningKey.fromSeed(unhex(c.secretKey));
        eq(key.publicKey(), unhex(c.publicKey), "public key");
        eq(key.signRaw(unhex(c.message)), unhex(c.signature), "signature");
      }, SIGN, c, ["secretKey"]);
    }
  }

  for (const c of list("api_key", "cases")) {
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
    }, [], c);
  }
  // Read while the cases are built, as everything the cases use (see the last case).
  const { alphabet, urlSafeAlphabet, reserved: reservedChars } = v.api_key;
  for (const [which, chars] of [["full", alphabet], ["urlSafe", urlSafeAlphabet]]) {
    add(`api_key: generated keys use exactly the ${which} alphabet`, () => {
      // The binding exposes no alphabet, so enough keys are generated to see every
      // character: 40 keys of 256 miss one of ~78 characters with odds below 1e-55.
      const sorted = (s) => [...new Set(s)].sort().join("");
      eq(sorted(chars).length, chars.length, `${which}: a character twice in ${chars}`);
      const keys = Array.from({ length: 40 }, () => t.generateApiKey(256, which));
      for (const k of keys) {
        eq(k.length, 256, "length");
        eq(t.validateApiKey(k), k, "valid");
      }
      eq(sorted(keys.join("")), sorted(chars), "characters seen");
      eq(t.generateApiKey(undefined, which).length, 40, "default length");
      expectErr("generate 19", "api_key_too_short", () => t.generateApiKey(19, which));
    });
  }
  add("api_key: every reserved character is refused", () => {
    // Every character the vectors call reserved, not only those with a case of their own.
    const reserved = [...reservedChars];
    if (reserved.length === 0) throw new AssertionError("no reserved characters");
    for (const ch of reserved) {
      const e = expectErr(`reserved ${ch}`, "api_key_reserved_char", () => t.validateApiKey(`Abcdefghij${ch}0123456789`));
      eq(e.position, 10, `reserved ${ch}: position`);
      eq(e.character, ch, `reserved ${ch}: character`);
    }
  });

  for (const c of list("url_token", "cases")) {
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
    }, [], c);
  }

  for (const c of list("activation", "cases")) {
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
    }, [], c);
  }

  for (const c of list("transaction", "cases")) {
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
    }, [], c);
  }
  for (const c of list("transaction", "unparsable")) {
    add(`transaction unparsable: ${c.name}`, () => {
      expectErr(c.name, "invalid_argument", () => t.transactionFromJson(c.json));
    }, [], c);
  }

  for (const c of list("product", "cases")) {
    add(`product: ${c.name}`, () => {
      const p = t.productFromJson(c.id, JSON.stringify(c.product));
      eq(p.id, c.id, "id");
      if (c.valid) {
        t.validateProduct(p);
        if ("canonical" in c) eq(t.productToJson(p), c.canonical, "canonical");
      } else {
        const e = expectErr(c.name, c.error, () => t.validateProduct(p));
        eq(fieldsOf(e), c.fields, "fields");
      }
    }, [], c);
  }
  for (const c of list("product", "unparsable")) {
    add(`product unparsable: ${c.name}`, () => {
      expectErr(c.name, "invalid_argument", () => t.productFromJson("p", c.json));
    }, [], c);
  }

  const dkeys = t.TrustedKeys.fromJwks(v.descriptor.jwks);
  for (const c of list("descriptor", "cases")) {
    add(`descriptor: ${c.name}`, () => {
      const call = () => t.verifyDescriptor(c.jws, dkeys, c.now, c.options);
      if (c.valid) {
        eq(call().claims, c.expected, "claims");
      } else {
        expectErr(c.name, c.error, call);
      }
    }, [], c);
  }
  for (const c of list("descriptor", "jwksCases")) {
    add(`jwks: ${c.name}`, () => {
      const call = () => t.TrustedKeys.fromJwksJson(JSON.stringify(c.jwks));
      if (c.valid) call();
      else expectErr(c.name, c.error, call);
    }, [], c);
  }
  for (const c of list("descriptor", "signing")) {
    add(`descriptor signing: ${c.name}`, () => {
      const key = t.SigningKey.fromSeed(unhex(c.seed));
      eq(key.kid, c.kid, "kid");
      eq(t.signDescriptor(c.claims, key), c.jws, "jws");
    }, [...SIGN, "signDescriptor"], c);
  }

  const rkeys = t.TrustedKeys.fromJwks(v.receipt.jwks);
  for (const c of list("receipt", "cases")) {
    add(`receipt: ${c.name}`, () => {
      const call = () => t.verifyReceiptChain(c.receipts, rkeys, c.previous ?? undefined);
      if (c.valid) {
        eq(call().length, c.count, "count");
      } else {
        const e = expectErr(c.name, c.error, call);
        eq(e.index, c.index, "index");
      }
    }, [], c);
  }
  for (const c of list("receipt", "witnessed")) {
    add(`receipt witnessed: ${c.name}`, () => {
      const call = () => t.verifyReceiptChainWitnessed(c.receipts, rkeys, c.witness);
      if (c.valid) eq(call().length, c.count, "count");
      else expectErr(c.name, c.error, call);
    }, [], c);
  }
  for (const c of list("receipt", "advance")) {
    add(`receipt advance: ${c.name}`, () => {
      const call = () => t.advancesWitness(c.current ?? undefined, c.received, rkeys);
      if (c.valid) eq(call(), c.advances, "advances");
      else expectErr(c.name, c.error, call);
    }, [], c);
  }
  list("receipt", "links").forEach((l, i) => {
    add(`receipt link ${i}`, () => eq(t.receiptLink(l.receipt), l.link, "link"), [], l);
  });

  const params = (p) => ({ memoryKib: p.memoryKib, iterations: p.iterations, parallelism: p.parallelism });
  list("dynamic_key", "derive").forEach((c, i) => {
    add(`dynamic_key derive ${i}: ${c.login}`, () => {
      const pair = t.deriveDynamicKeyPair(c.system, c.login, c.password, params(c.params));
      eq(pair.seed(), unhex(c.seed), "seed");
      eq(pair.publicKey(), unhex(c.publicKey), "public key");
    }, ["deriveDynamicKeyPair"], c);
  });
  list("dynamic_key", "create").forEach((c, i) => {
    add(`dynamic_key create ${i}`, () => {
      const pair = t.DynamicKeyPair.fromSeed(c.system, c.login, unhex(c.seed));
      eq(t.createDynamicApiKeyWithNonce(pair, c.now, unhex(c.nonce)), c.key, "key");
    }, ["DynamicKeyPair", "createDynamicApiKeyWithNonce"], c);
  });
  for (const c of list("dynamic_key", "deriveRefused")) {
    add(`dynamic_key derive refused: ${c.name}`, () => {
      expectErr(c.name, c.error, () => t.deriveDynamicKeyPair(c.system, c.login, c.password, params(c.params)));
    }, ["deriveDynamicKeyPair"], c);
  }
  for (const c of list("dynamic_key", "verify")) {
    add(`dynamic_key verify: ${c.name}`, () => {
      const call = () => t.verifyDynamicApiKey(c.key, unhex(c.publicKey), c.system, c.now, c.windowSecs);
      if (c.valid) {
        const got = call();
        eq({ login: got.login, issuedAt: got.issuedAt, nonce: got.nonce },
          { login: c.expected.login, issuedAt: c.expected.issuedAt, nonce: unhex(c.expected.nonce) }, "claims");
      } else {
        expectErr(c.name, c.error, call);
      }
    }, [], c);
  }

  const skeys = t.TrustedKeys.fromJwks(v.server_time.jwks);
  for (const c of list("server_time", "cases")) {
    add(`server_time: ${c.name}`, () => {
      const call = () => t.verifyServerTime(c.jws, skeys, c.expectedNonce ?? undefined);
      if (c.valid) eq(call().iat, c.iat, "iat");
      else expectErr(c.name, c.error, call);
    }, [], c);
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

  // ---- arguments the binding converts: refused, never silently read another way ----
  // `invalid_argument` whose message names what was wrong (the unknown member, ...).
  const refused = (name, fn, mention) => {
    const e = expectErr(name, "invalid_argument", fn);
    if (mention !== undefined && !e.message.includes(mention)) {
      throw new AssertionError(`${name}: message does not name ${mention}: ${e.message}`);
    }
  };
  // A string argument holding a lone surrogate: refused, naming the argument.
  const lonely = (name, fn, what) => refused(name, fn, `${what} is not well-formed UTF-16`);
  const d0 = v.descriptor.cases.find((c) => c.valid);
  const verify = (options) => t.verifyDescriptor(d0.jws, dkeys, d0.now, options);

  add("arguments: verifyDescriptor options refuse a member they do not know", () => {
    // A misspelt option must not switch its check off.
    const device = d0.expected.deviceId;
    expectErr("expectedDeviceId", "device_mismatch", () => verify({ expectedDeviceId: "till-7" }));
    eq(verify({ expectedDeviceId: device }).claims.deviceId, device, "right device");
    for (const [member, value] of [["expectedDeviceID", "till-7"], ["expected_device_id", "till-7"],
      ["trustedTimefloor", d0.now + 1], ["expectedApplicationPackge", "x"], ["leeway", 5]]) {
      refused(member, () => verify({ [member]: value }), `\`${member}\``);
      refused(`${member} beside known ones`, () => verify({ leewaySecs: 0, [member]: value }), `\`${member}\``);
    }
    // Absent options, or members set to null/undefined, are the defaults.
    for (const o of [undefined, null, {}, { expectedDeviceId: null, trustedTimeFloor: undefined }]) {
      eq(verify(o).claims, d0.expected, `options ${JSON.stringify(o)}`);
    }
  });
  add("arguments: verifyDescriptor options must be an object", () => {
    for (const o of [[], [d0.now + 1], ["till-7"], "expectedDeviceId", 5, true, false]) {
      refused(`options ${JSON.stringify(o)}`, () => verify(o), "expected a JSON object");
    }
    refused("options a function", () => verify(() => 1), "options");
  });

  add("arguments: encodeUrlToken refuses members it does not know, and arrays", () => {
    const c = v.url_token.cases.find((x) => x.valid && x.expected.params.length > 0);
    const tok = t.parseUrlToken(c.path);
    eq(t.encodeUrlToken(tok), c.encoded, "as parsed");
    refused("token member", () => t.encodeUrlToken({ ...tok, rmsystem: [1] }), "`rmsystem`");
    refused("param member", () => t.encodeUrlToken({ ...tok, params: [{ ...tok.params[0], Id: "a" }] }), "`Id`");
    refused("param as array", () => t.encodeUrlToken({ ...tok, params: [[tok.params[0].id, tok.params[0].value]] }),
      "expected a JSON object");
    refused("token as array", () => t.encodeUrlToken([tok.prefix, tok.version, tok.rmSystem]), "expected a JSON object");
    refused("token as string", () => t.encodeUrlToken(c.path), "expected a JSON object");
  });

  add("arguments: deriveDynamicKeyPair params refuse members they do not know, and arrays", () => {
    const p = { memoryKib: 64, iterations: 1, parallelism: 1 };
    refused("memoryKiB", () => t.deriveDynamicKeyPair("1,2,3,4", "anna", "pw", { ...p, memoryKiB: 1 << 20 }), "`memoryKiB`");
    refused("params as array", () => t.deriveDynamicKeyPair("1,2,3,4", "anna", "pw", [64, 1, 1]), "expected a JSON object");
    eq(t.deriveDynamicKeyPair("1,2,3,4", "anna", "pw", p).login, "anna", "known members");
  }, ["deriveDynamicKeyPair"]);

  add("arguments: Client config refuses members it does not know, and non-objects", () => {
    const keys = new t.TrustedKeys();
    const baseUrl = "http://127.0.0.1:9";
    new t.Client({ baseUrl }, keys);
    new t.Client({ baseUrl, timeoutMs: 1000, deviceId: "till-7", applicationPackage: "com.example.pos",
      clockToleranceSecs: 60, maxResponseBytes: 1 << 20 }, keys);
    new t.Client({ baseUrl, deviceId: null, timeoutMs: undefined }, keys);
    // connectTimeoutMs is the native clients' only: fetch has no connect timeout.
    for (const member of ["deviceID", "device_id", "applicationPackge", "connectTimeoutMs", "baseURL"]) {
      refused(member, () => new t.Client({ baseUrl, [member]: 1 }, keys), `\`${member}\``);
    }
    refused("config as array", () => new t.Client([baseUrl], keys), "expected a JSON object");
    refused("config as string", () => new t.Client(baseUrl, keys), "expected a JSON object");
  }, ["Client"]);

  add("arguments: putProduct and renew refuse members they do not know, and non-objects", () => {
    // Refused at the call (no promise): a misspelt `actve: false` must not leave the
    // product on sale.
    const client = new t.Client({ baseUrl: "http://127.0.0.1:9", timeoutMs: 1000 }, new t.TrustedKeys());
    const kaffe = { id: "kaffe", name: "Kaffe", price: 2500, currency: "SEK", vatRate: 1200 };
    // Known members (updatedAt as syncProducts gives it, null for an absent one) make
    // a request; without an API key it rejects, which is not what is tested here.
    for (const p of [kaffe, { ...kaffe, barcode: null, active: false, updatedAt: "2025-01-01T00:00:00Z" },
      { ...kaffe, active: null, updatedAt: null }]) {
      const sent = client.putProduct(p);
      if (!(sent instanceof Promise)) throw new AssertionError(`putProduct(${JSON.stringify(p)}) gave no promise`);
      sent.catch(() => {});
    }
    for (const member of ["actve", "vat_rate", "vatrate", "Active", "updated_at"]) {
      refused(member, () => client.putProduct({ ...kaffe, [member]: false }), `\`${member}\``);
    }
    refused("product as array", () => client.putProduct(["kaffe", "Kaffe", 2500, "SEK", 1200]), "expected a JSON object");
    refused("product without price", () => client.putProduct({ ...kaffe, price: undefined }), "price");
    const renewal = { productionNumber: "TG-7Q2M-K4PX", deviceId: "till-7", validFrom: "2025-01-01T00:00:00Z",
      validTo: "2025-12-31T00:00:00Z" };
    client.renew({ ...renewal, descriptor: null }).catch(() => {});
    refused("renew deviceID", () => client.renew({ ...renewal, deviceID: "x" }), "`deviceID`");
    client.free();
  }, ["Client"]);

  add("arguments: validateProduct and productToJson refuse members they do not know, and non-objects", () => {
    // The JS Product, as putProduct takes it: a misspelt `actve: false` is an error.
    const kaffe = { id: "kaffe", name: "Kaffe", price: 2500, currency: "SEK", vatRate: 1200 };
    for (const p of [kaffe, { ...kaffe, barcode: null, active: false, updatedAt: "2025-01-01T00:00:00Z" },
      { ...kaffe, active: null, updatedAt: null }]) {
      t.validateProduct(p);
    }
    eq(t.productToJson({ ...kaffe, active: null, updatedAt: "2025-01-01T00:00:00Z" }),
      '{"name":"Kaffe","price":2500,"currency":"SEK","vatRate":1200,"active":true}', "body");
    for (const member of ["actve", "vat_rate", "vatrate", "Active", "updated_at"]) {
      refused(member, () => t.validateProduct({ ...kaffe, [member]: false }), `\`${member}\``);
      refused(`productToJson ${member}`, () => t.productToJson({ ...kaffe, [member]: false }), `\`${member}\``);
    }
    refused("product as array", () => t.validateProduct(["kaffe", "Kaffe", 2500, "SEK", 1200]), "expected a JSON object");
    refused("product without id", () => t.validateProduct({ ...kaffe, id: undefined }), "id");
    refused("fractional price", () => t.validateProduct({ ...kaffe, price: 1.5 }), "product");
  });

  add("arguments: string enums refuse a value they do not know", () => {
    for (const a of ["urlsafe", "URL_SAFE", "Full", "", 1]) {
      refused(`alphabet ${JSON.stringify(a)}`, () => t.generateApiKey(40, a), "alphabet");
    }
    for (const a of [undefined, null, "full"]) {
      const k = t.generateApiKey(256, a);
      if (![...k].every((ch) => alphabet.includes(ch))) throw new AssertionError(k);
    }
    const c = v.activation.cases.find((x) => x.valid && x.corporateIdRule === "generic");
    eq(t.validateActivationRequest(c.request, "generic").corporateId, c.expected.corporateId, "generic");
    for (const r of ["Generic", "swedish", "", 0]) {
      refused(`rule ${JSON.stringify(r)}`, () => t.validateActivationRequest(c.request, r), "corporateIdRule");
    }
    const s = v.activation.cases.find((x) => x.valid && x.corporateIdRule === "swedishOrgNumber");
    for (const r of [undefined, null, "swedishOrgNumber"]) {
      eq(t.validateActivationRequest(s.request, r).corporateId, s.expected.corporateId, `rule ${r}`);
    }
  });

  add("arguments: generateApiKey length must be a whole number", () => {
    for (const n of [40.7, 19.5, Number.MAX_SAFE_INTEGER, 2 ** 32, -1, -0.5, NaN, Infinity, -Infinity]) {
      refused(`length ${n}`, () => t.generateApiKey(n), "length");
    }
    eq(t.generateApiKey(undefined).length, 40, "default");
    eq(t.generateApiKey(null).length, 40, "null is the default");
    eq(t.generateApiKey(20).length, 20, "20");
    expectErr("0", "api_key_too_short", () => t.generateApiKey(0));
    expectErr("257", "api_key_too_long", () => t.generateApiKey(257));
    expectErr("2^32 - 1", "api_key_too_long", () => t.generateApiKey(2 ** 32 - 1));
  });

  add("arguments: a string with a lone surrogate is refused, not read as U+FFFD", () => {
    const link = v.receipt.links[0];
    // Well-formed text, U+FFFD and pairs included, passes as it is.
    eq(t.receiptLink(link.receipt), link.link, "link");
    const ok = ["x\uFFFD", "x\uD83D\uDE00", "\uFFFD\uD800\uDC00"].map((s) => t.receiptLink(s));
    if (new Set(ok).size !== 3) throw new AssertionError("distinct texts, distinct links");
    for (const s of ["x\uD800", "x\uDC00", "\uD800", "\uDE00\uD83D", "\uFFFD\uD800"]) {
      lonely(`receiptLink ${JSON.stringify(s)}`, () => t.receiptLink(s), "receipt");
    }
    refused("receiptLink a number", () => t.receiptLink(5), "receipt must be a string");
    refused("receiptLink undefined", () => t.receiptLink(undefined), "receipt must be a string");
    const lone = "\uD800";
    lonely("validateApiKey", () => t.validateApiKey(`Abcdefghij0123456789${lone}`), "key");
    lonely("parseUrlToken", () => t.parseUrlToken(`/OpenApi_1,2,3,4$$tok/Products${lone}`), "path");
    lonely("verifyDescriptor", () => t.verifyDescriptor(d0.jws + lone, dkeys, d0.now), "jws");
    lonely("TrustedKeys.contains", () => dkeys.contains(`kid${lone}`), "kid");
    lonely("TrustedKeys.addRaw", () => new t.TrustedKeys().addRaw(`kid${lone}`, new Uint8Array(32)), "kid");
    lonely("TrustedKeys.fromJwksJson", () => t.TrustedKeys.fromJwksJson(`{"keys":[],"x":"${lone}"}`), "json");
    const tx = JSON.stringify(v.transaction.cases.find((x) => x.valid).transaction);
    lonely("transactionFromJson", () => t.transactionFromJson(tx.replace("}", `,"x":"${lone}"}`)), "json");
    const body = JSON.stringify(v.product.cases.find((x) => x.valid).product);
    lonely("productFromJson id", () => t.productFromJson(`p${lone}`, body), "id");
    lonely("productFromJson json", () => t.productFromJson("p", body.replace("}", `,"x":"${lone}"}`)), "json");
    const r = v.receipt.cases.find((x) => x.valid && x.receipts.length > 1);
    lonely("verifyReceiptChain", () => t.verifyReceiptChain([...r.receipts.slice(0, -1), r.receipts.at(-1) + lone], rkeys), "receipts");
    lonely("verifyReceiptChain previous", () => t.verifyReceiptChain(r.receipts, rkeys, lone), "previous");
    lonely("verifyReceiptChainWitnessed", () => t.verifyReceiptChainWitnessed(r.receipts, rkeys, r.receipts[0] + lone), "witness");
    lonely("advancesWitness", () => t.advancesWitness(undefined, r.receipts[0] + lone, rkeys), "received");
    const st = v.server_time.cases.find((x) => x.valid && x.expectedNonce);
    lonely("verifyServerTime nonce", () => t.verifyServerTime(st.jws, skeys, st.expectedNonce + lone), "expectedNonce");
    const dk = v.dynamic_key.verify.find((x) => x.valid);
    lonely("verifyDynamicApiKey system", () => t.verifyDynamicApiKey(dk.key, unhex(dk.publicKey), dk.system + lone, dk.now), "system");
    // Inside objects, JSON.stringify writes \ud800, which serde refuses: the same answer.
    const sale = JSON.parse(tx);
    refused("in a transaction", () => t.validateTransaction({ ...sale, reference: `r${lone}` }), "transaction");
    refused("in an option", () => verify({ expectedDeviceId: `a${lone}` }), "options");
  });
  add("arguments: a lone surrogate in a password or login is refused", () => {
    lonely("password", () => t.deriveDynamicKeyPair("1,2,3,4", "anna", "pw\uD800"), "password");
    lonely("login", () => t.DynamicKeyPair.fromSeed("1,2,3,4", "anna\uDC00", new Uint8Array(32)), "login");
  }, ["deriveDynamicKeyPair", "DynamicKeyPair"]);
  add("arguments: a lone surrogate in a Client string is refused", () => {
    const client = new t.Client({ baseUrl: "http://127.0.0.1:9" }, new t.TrustedKeys());
    lonely("setApiKey", () => client.setApiKey("Abcdefghij0123456789\uD800"), "key");
    lonely("getTransaction", () => client.getTransaction("tx\uD800"), "id");
    lonely("syncProducts", () => client.syncProducts("\uDC00"), "rve");
    lonely("verifyStoredDescriptor", () => client.verifyStoredDescriptor(d0.jws + "\uD800", d0.now), "jws");
    lonely("verifyHistory", () => client.verifyHistory("r\uD800"), "witness");
    lonely("verifyHistorySince", () => client.verifyHistorySince("r\uD800"), "witness");
    const renewal = { productionNumber: "TG-7Q2M-K4PX", deviceId: "d", validFrom: "2026-01-01T00:00:00Z",
      validTo: "2026-12-31T00:00:00Z" };
    lonely("renewWithDescriptor", () => client.renewWithDescriptor(renewal, d0.jws + "\uDC00"), "descriptorJws");
  }, ["Client"]);
  // Every case of `list` was given to a check (`add`), which checks its members.
  const ungiven = [...tracking.values()].filter((s) => !s.given).map((s) => s.at);
  add("every vector case is given to a check", () => {
    if (ungiven.length) throw new AssertionError(`vector cases given to no JS check: ${ungiven.join(", ")}`);
  });
  // Every file of FILES was read above (and the runners check that FILES lists every
  // file of the directory): a new file cannot go unchecked in JS.
  const unread = FILES.filter((f) => !read.has(f));
  add("every vector file is read", () => {
    if (unread.length) throw new AssertionError(`vector files no JS case reads: ${unread.join(", ")}`);
  });
  // Every top-level member of every file (a list of cases, a key set, an alphabet) was
  // read while the cases were built, but those FOR_PEOPLE: a new one cannot go unchecked
  // in JS. Taken here, after all other cases are built: a member read only while a case
  // runs does not count.
  const unreadMembers = FILES.flatMap((f) => Object.keys(vectors[f] ?? {})
    .filter((k) => !read.get(f)?.has(k) && !FOR_PEOPLE.includes(k)).sort().map((k) => `${f}.json: ${k}`));
  add("every top-level vector member is read", () => {
    if (unreadMembers.length) {
      throw new AssertionError(`top-level members of tests/vectors no JS case reads: ${unreadMembers.join(", ")}`);
    }
  });
  return out;
}
