// End-to-end activation in node against a running tillgate-server through the npm
// package's client (Promises). Skipped unless TILLGATE_URL is set.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));
const pkg = process.env.TILLGATE_PKG ?? `${root}/bindings/wasm/pkg`;
const t = createRequire(import.meta.url)(`${pkg}/node/tillgate.js`);
const url = process.env.TILLGATE_URL;
const skip = url ? false : "no TILLGATE_URL: no server to test against";
const sale = { type: "sale", currency: "SEK", total: 12500, vat: [{ rate: 2500, amount: 2500 }],
  items: [{ name: "Kaffe", quantity: 1, amount: 12500 }] };

const day = (d) => `${new Date(Date.now() + d * 86_400_000).toISOString().slice(0, 10)}T00:00:00Z`;

test("activation, handshake, activation code and a sale against the server", { skip }, async () => {
  const keys = t.TrustedKeys.fromJwksJson(process.env.TILLGATE_JWKS);
  const device = `js-${Date.now()}`;
  const client = new t.Client({ baseUrl: url, deviceId: device }, keys);
  const activation = await client.activate({
    cashRegisterName: "Kassa JS", deviceId: device, validFrom: day(0), validTo: day(180),
    corporateId: "556036-0793", applicationPackage: "com.example.pos", extras: { lane: "js" },
  });
  assert.equal(activation.status, "pending");

  await assert.rejects(client.handshake(), (e) => e instanceof Error && e.code === "pending_approval");

  const r = await fetch(`${url}/admin/activations/${activation.activationId}/approve`, {
    method: "POST", body: "{}",
    headers: { authorization: `Bearer ${process.env.TILLGATE_ADMIN_KEY}`, "content-type": "application/json" },
  });
  assert.equal(r.status, 200);
  const hs = await client.handshake();
  assert.equal(hs.status, "approved");
  assert.equal(client.trustedTimeFloor(), hs.serverTime);

  const now = Math.floor(t.unixTimeMs() / 1000);
  const code = await client.activationCode(now);
  assert.equal(code.descriptor.claims.deviceId, device);
  assert.deepEqual(code.descriptor.claims.extras, { lane: "js" });
  assert.equal(client.verifyStoredDescriptor(code.jws, now).claims.sub, activation.productionNumber);

  const outbox = await t.Outbox.openInMemory();
  const sent = await outbox.submit(client, sale, undefined, t.unixTimeMs());
  assert.equal(sent.kind, "sent");
  assert.equal(t.verifyReceiptChain([sent.stored.receipt], keys)[0].seq, 1);
  assert.equal(outbox.length, 0);
  const stored = await client.getTransaction(sent.stored.id);
  assert.equal(stored.receipt, sent.stored.receipt);
  assert.equal(stored.total, 12500);
  // The register's kept receipt is its witness of the server's history.
  const history = await client.verifyHistory(sent.stored.receipt);
  assert.deepEqual(history.receipts.map((c) => c.seq), [1]);
  assert.equal(history.transactions[0].receipt, sent.stored.receipt);
  assert.equal((await client.verifyHistory()).transactions.length, 1);
  assert.deepEqual((await client.verifyHistorySince(sent.stored.receipt)).receipts.map((c) => c.seq), [1]);
  await assert.rejects(client.verifyHistory("not.a.receipt"),
    (e) => e instanceof Error && e.code === "invalid_witness");
  // The outbox keeps that receipt as the register's witness.
  assert.equal(outbox.witness(), sent.stored.receipt);
  assert.equal(outbox.witnessProblem(), undefined);
  assert.deepEqual((await outbox.verifyHistory(client)).receipts.map((c) => c.seq), [1]);
  assert.deepEqual((await outbox.verifyHistorySince(client)).receipts.map((c) => c.seq), [1]);
  await outbox.resetWitness();
  assert.equal(outbox.witness(), undefined);
  await outbox.verifyHistory(client);
  assert.equal(outbox.witness(), sent.stored.receipt);
  // A witness the app kept itself is adopted only when the outbox keeps none.
  const pn = activation.productionNumber;
  assert.equal(await outbox.adoptWitness(client, sent.stored.receipt, pn), false);
  await outbox.resetWitness();
  await assert.rejects(outbox.adoptWitness(client, sent.stored.receipt, "TG-OTHR-0001"),
    (e) => e instanceof Error && e.code === "invalid_witness");
  assert.equal(await outbox.adoptWitness(client, sent.stored.receipt, pn), true);
  assert.equal(outbox.witness(), sent.stored.receipt);
  await assert.rejects(outbox.adoptWitness(client, "not.a.receipt", pn),
    (e) => e instanceof Error && e.code === "invalid_witness");
});

test("an answer over maxResponseBytes is refused with invalid_response", { skip }, async () => {
  const keys = t.TrustedKeys.fromJwksJson(process.env.TILLGATE_JWKS);
  const device = `js-cap-${Date.now()}`;
  const request = (d) => ({
    cashRegisterName: "Kassa JS", deviceId: d, validFrom: day(0), validTo: day(180),
    corporateId: "556036-0793", applicationPackage: "com.example.pos", extras: {},
  });
  // The activation answer is a few hundred bytes: over a 64-byte cap, under the default.
  const small = new t.Client({ baseUrl: url, deviceId: device, maxResponseBytes: 64 }, keys);
  await assert.rejects(small.activate(request(device)),
    (e) => e instanceof Error && e.code === "invalid_response" && /larger than 64 bytes/.test(e.message));
  const roomy = new t.Client({ baseUrl: url, deviceId: `${device}b` }, keys);
  assert.equal((await roomy.activate(request(`${device}b`))).status, "pending");
});

test("an endless answer without a length stops at maxResponseBytes, its stream cancelled", { timeout: 30_000 }, async () => {
  // A server that answers 200 and then sends 64 KiB chunks until the client goes away.
  const { createServer } = await import("node:http");
  let closed;
  const gone = new Promise((resolve) => { closed = resolve; });
  let sent = 0;
  const server = createServer((req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    const timer = setInterval(() => { sent += chunk.length; res.write(chunk); }, 2);
    res.on("close", () => { clearInterval(timer); closed(); });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const base = `http://127.0.0.1:${server.address().port}`;
  try {
    const client = new t.Client({ baseUrl: base, timeoutMs: 60_000, maxResponseBytes: 1024 * 1024 },
      new t.TrustedKeys());
    client.setApiKey("Abcdefghij0123456789!@$");
    // A timeout would be code "timeout"; the cap gives invalid_response.
    await assert.rejects(client.handshake(),
      (e) => e instanceof Error && e.code === "invalid_response" && /larger than 1048576 bytes/.test(e.message));
    await gone; // the client closed the connection: nothing more is read
    assert.ok(sent < 64 * 1024 * 1024, `the server wrote ${sent} bytes`);
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

test("outbox and client string arguments with a lone surrogate are refused", async () => {
  // Thrown at the call, like every other argument error: no promise, nothing queued.
  const client = new t.Client({ baseUrl: "http://127.0.0.1:9", timeoutMs: 1000 }, new t.TrustedKeys());
  client.setApiKey("Abcdefghij0123456789!@$");
  const outbox = await t.Outbox.openInMemory();
  const calls = [
    ["submit", () => outbox.submit(client, sale, "sale-\uD800", t.unixTimeMs()), "idempotencyKey"],
    ["retryFailed", () => outbox.retryFailed("sale-\uDC00", t.unixTimeMs()), "idempotencyKey"],
    ["discard", () => outbox.discard("\uD800"), "idempotencyKey"],
    ["removeCorrupt", () => outbox.removeCorrupt("queue-\uD800"), "name"],
    ["adoptWitness receipt", () => outbox.adoptWitness(client, "r\uD800", "TG-7Q2M-K4PX"), "receipt"],
    ["adoptWitness productionNumber", () => outbox.adoptWitness(client, "r", "TG-\uD800"), "productionNumber"],
  ];
  for (const [name, call, what] of calls) {
    assert.throws(call, (e) => e instanceof Error && e.code === "invalid_argument" &&
      e.message.includes(`${what} is not well-formed UTF-16`), name);
  }
  assert.equal(outbox.length, 0);
  assert.deepEqual(outbox.entries(), []);
});

test("resetWitnessSeen erases only the problem shown, and reads it strictly", async () => {
  // A server that stores every sale and answers a receipt that does not verify: the
  // outbox keeps it as the witness problem (invalid_receipt).
  const { createServer } = await import("node:http");
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => { body += c; });
    req.on("end", () => {
      res.writeHead(201, { "content-type": "application/json" });
      res.end(JSON.stringify({ ...JSON.parse(body), id: "tx_1", sequence: 1,
        createdAt: "2025-07-01T00:00:00Z", productionNumber: "TG-7Q2M-K4PX", txh: "x",
        receipt: "not.a.receipt" }));
    });
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const client = new t.Client({ baseUrl: `http://127.0.0.1:${server.address().port}` },
      new t.TrustedKeys());
    client.setApiKey("Abcdefghij0123456789!@$");
    const outbox = await t.Outbox.openInMemory();
    assert.equal(await outbox.resetWitnessSeen(undefined), undefined);
    assert.equal((await outbox.submit(client, sale, "sale-0001", t.unixTimeMs())).kind, "sent");
    const shown = outbox.witnessProblem();
    assert.equal(shown.code, "invalid_receipt");
    assert.equal(shown.receipt, "not.a.receipt");
    // Thrown at the call: a problem that is not exactly one the outbox gave.
    const { atMs, ...partial } = shown;
    for (const bad of ["x", 1, [shown], { ...shown, extra: 1 }, partial, { ...shown, atMs: "1" }]) {
      assert.throws(() => outbox.resetWitnessSeen(bad),
        (e) => e instanceof Error && e.code === "invalid_argument" && e.message.startsWith("seen"),
        JSON.stringify(bad));
    }
    // The operator was shown none, or another one: the problem is kept and answered.
    assert.deepEqual(await outbox.resetWitnessSeen(null), shown);
    assert.deepEqual(await outbox.resetWitnessSeen({ ...shown, atMs: atMs + 1 }), shown);
    assert.deepEqual(outbox.witnessProblem(), shown);
    // The one shown is erased.
    assert.equal(await outbox.resetWitnessSeen(shown), undefined);
    assert.equal(outbox.witnessProblem(), undefined);
    assert.equal(outbox.witness(), undefined);
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

test("an offline sale is queued, not lost", { skip }, async () => {
  const offline = new t.Client({ baseUrl: "http://127.0.0.1:9", timeoutMs: 1000 },
    t.TrustedKeys.fromJwksJson(process.env.TILLGATE_JWKS));
  offline.setApiKey("Abcdefghij0123456789!@$");
  const outbox = await t.Outbox.openInMemory();
  const r = await outbox.submit(offline, sale, "sale-0001", t.unixTimeMs());
  assert.deepEqual(r, { kind: "queued", idempotencyKey: "sale-0001" });
  assert.equal(outbox.length, 1);
  assert.equal(outbox.lastError().code, "network");
});

const newClient = (device) =>
  new t.Client({ baseUrl: url, deviceId: device }, t.TrustedKeys.fromJwksJson(process.env.TILLGATE_JWKS));

async function approve(activationId) {
  const r = await fetch(`${url}/admin/activations/${activationId}/approve`, {
    method: "POST", body: "{}",
    headers: { authorization: `Bearer ${process.env.TILLGATE_ADMIN_KEY}`, "content-type": "application/json" },
  });
  assert.equal(r.status, 200);
}

/** A new register valid until `validTo`, approved; its client has the key. */
async function approvedRegister(device, validTo) {
  const client = newClient(device);
  const activation = await client.activate({
    cashRegisterName: "Kassa JS", deviceId: device, validFrom: day(0), validTo,
    corporateId: "556036-0793", applicationPackage: "com.example.pos",
  });
  await approve(activation.activationId);
  assert.equal((await client.handshake()).status, "approved");
  return { client, activation };
}

const refusal = async (promise) => {
  try { await promise; } catch (e) { return e; }
  assert.fail("expected a refusal");
};

/** Moves the server's wall clock (libfaketime offset, see bindings/test-common.sh). */
const serverClock = (offset) => writeFileSync(process.env.TILLGATE_SERVER_CLOCK, `${offset}\n`);
const clockSkip = skip || (process.env.TILLGATE_SERVER_CLOCK ? false : "no TILLGATE_SERVER_CLOCK: the server's clock cannot move");

// What an app decides on, beside the code: `httpStatus`, `retryAfterMs`, `transient`, `auth`.
test("a handshake while the registration is pending is an auth error, not a transient one", { skip }, async () => {
  const device = `js-pending-${Date.now()}`;
  const client = newClient(device);
  await client.activate({
    cashRegisterName: "Kassa JS", deviceId: device, validFrom: day(0), validTo: day(180),
    corporateId: "556036-0793", applicationPackage: "com.example.pos",
  });
  const e = await refusal(client.handshake());
  assert.ok(e instanceof Error);
  assert.equal(e.code, "pending_approval");
  assert.equal(e.httpStatus, 403);
  assert.equal(e.auth, true);
  assert.equal(e.transient, false);
  assert.equal("retryAfterMs" in e, false);
});

test("an activation repeated with its key answers the same registration with a fresh key", { skip }, async () => {
  const device = `js-repeat-${Date.now()}`;
  const request = (d) => ({
    cashRegisterName: "Kassa JS", deviceId: d, validFrom: day(0), validTo: day(180),
    corporateId: "556036-0793", applicationPackage: "com.example.pos",
  });
  const key = crypto.randomUUID();
  const first = await newClient(device).activateWithKey(request(device), key);
  // The answer was lost; a moment later the app sends the same request with the key it
  // stored (keys issued before the repeat reached the server stop working).
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const client = newClient(device);
  const again = await client.activateWithKey(request(device), key);
  assert.equal(again.activationId, first.activationId);
  assert.equal(again.productionNumber, first.productionNumber);
  assert.notEqual(again.apiKey, first.apiKey);
  assert.equal((await refusal(client.handshake())).code, "pending_approval");
  const stale = newClient(device);
  stale.setApiKey(first.apiKey);
  assert.equal((await refusal(stale.handshake())).code, "invalid_credentials");
  // The key names one request; a guessable key is refused before sending.
  const reused = await refusal(client.activateWithKey(request(`${device}-other`), key));
  assert.deepEqual([reused.code, reused.httpStatus], ["idempotency_key_reused", 422]);
  const short = await refusal(client.activateWithKey(request(device), "receipt-42"));
  assert.equal(short.code, "invalid_idempotency_key");
  assert.equal("httpStatus" in short, false);
  // Once approved, the key is not issued again.
  await approve(again.activationId);
  const decided = await refusal(client.activateWithKey(request(device), key));
  assert.deepEqual([decided.code, decided.httpStatus], ["activation_not_repeatable", 409]);
  assert.equal((await client.handshake()).status, "approved");
});

test("a client pointed at an unreachable address gets a transient error without a status", async () => {
  const offline = new t.Client({ baseUrl: "http://127.0.0.1:9", timeoutMs: 1000 }, new t.TrustedKeys());
  offline.setApiKey("Abcdefghij0123456789!@$");
  const e = await refusal(offline.handshake());
  assert.ok(["network", "timeout"].includes(e.code), e.code);
  assert.equal(e.transient, true);
  assert.equal(e.auth, false);
  assert.equal("httpStatus" in e, false);
  assert.equal("retryAfterMs" in e, false);
});

test("a 503 or a 429 with Retry-After is transient and says when to try again", async () => {
  // A server being upgraded (503 schema_newer), then one that is busy (429).
  const { createServer } = await import("node:http");
  const answers = [
    [503, "7", { code: "schema_newer", detail: "upgrading", status: 503 }],
    [429, "3", { code: "rate_limited", detail: "slow down", status: 429 }],
  ];
  let next = 0;
  const server = createServer((req, res) => {
    const [status, retryAfter, body] = answers[next++ % answers.length];
    res.writeHead(status, { "content-type": "application/problem+json", "retry-after": retryAfter });
    res.end(JSON.stringify(body));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const client = new t.Client({ baseUrl: `http://127.0.0.1:${server.address().port}` }, new t.TrustedKeys());
    client.setApiKey("Abcdefghij0123456789!@$");
    const upgrading = await refusal(client.handshake());
    assert.equal(upgrading.code, "schema_newer");
    assert.deepEqual([upgrading.httpStatus, upgrading.retryAfterMs, upgrading.transient, upgrading.auth],
      [503, 7000, true, false]);
    const busy = await refusal(client.handshake());
    assert.equal(busy.code, "rate_limited");
    assert.deepEqual([busy.httpStatus, busy.retryAfterMs, busy.transient, busy.auth], [429, 3000, true, false]);
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

test("a sale the server refuses for good is answered as refused, with its fields, and kept as failed", { skip }, async () => {
  const { client } = await approvedRegister(`js-refused-${Date.now()}`, day(180));
  const outbox = await t.Outbox.openInMemory();
  // Core accepts it (a well-formed reference); the server knows no such transaction.
  const refund = { ...sale, type: "refund", reference: "tx_does_not_exist" };
  t.validateTransaction(refund);
  const r = await outbox.submit(client, refund, "js-refund-0001", t.unixTimeMs());
  assert.equal(r.kind, "refused");
  assert.equal(r.idempotencyKey, "js-refund-0001");
  assert.equal(r.error.code, "invalid_transaction");
  assert.equal(r.error.httpStatus, 400);
  assert.deepEqual(r.error.fields.map((f) => [f.field, f.code]), [["reference", "unknown_reference"]]);
  // Kept, marked failed (not pending).
  const entries = outbox.entries();
  assert.equal(entries.length, 1);
  assert.equal(entries[0].idempotencyKey, "js-refund-0001");
  assert.equal(entries[0].state, "failed");
  assert.equal(entries[0].lastError.code, "invalid_transaction");
  assert.deepEqual(entries[0].lastError.fields.map((f) => f.field), ["reference"]);
  assert.equal(outbox.length, 0);
  // The same key again answers the refusal again; nothing new is kept.
  const again = await outbox.submit(client, refund, "js-refund-0001", t.unixTimeMs());
  assert.equal(again.kind, "refused");
  assert.equal(again.error.code, "invalid_transaction");
  assert.equal(outbox.entries().length, 1);
});

test("an expired key is renewed and the old key stops working", { skip: clockSkip }, async () => {
  const device = `js-renew-${Date.now()}`;
  const { client, activation } = await approvedRegister(device, day(1));
  const oldKey = client.apiKey();
  const renewal = (validFrom, validTo) =>
    ({ productionNumber: activation.productionNumber, deviceId: device, validFrom, validTo });
  let renewed;
  try {
    serverClock("+2d"); // the key's period (until tomorrow midnight) is over
    assert.equal((await refusal(client.handshake())).code, "key_expired");
    // A period that does not end after the current one: the server's fields come through.
    const e = await refusal(client.renew(renewal(day(0), day(1))));
    assert.equal(e.code, "invalid_renewal_request");
    assert.deepEqual(e.fields.map((f) => f.field), ["validTo"]);
    assert.equal(client.apiKey(), oldKey);
    renewed = await client.renew(renewal(day(0), day(181)));
    assert.equal(renewed.status, "approved");
    assert.equal(renewed.activationId, activation.activationId);
    assert.notEqual(renewed.apiKey, oldKey);
    assert.equal(client.apiKey(), renewed.apiKey);
    assert.equal((await client.handshake()).validTo, day(181));
    const old = newClient(device);
    old.setApiKey(oldKey);
    assert.equal((await refusal(old.handshake())).code, "key_replaced");
  } finally {
    serverClock("+0");
  }
  // Back at today (a fresh client: this one trusts the server time two days on), the
  // renewed key works and the signed activation code carries the new period.
  const after = newClient(device);
  after.setApiKey(renewed.apiKey);
  const now = Math.floor(t.unixTimeMs() / 1000);
  assert.ok(Math.abs((await after.handshake()).serverTime - now) < 600);
  assert.equal((await after.activationCode(now)).descriptor.claims.exp, Date.parse(day(181)) / 1000);
});

test("a renewal with the stored descriptor waits for approval again", { skip }, async () => {
  const device = `js-lost-${Date.now()}`;
  const { client, activation } = await approvedRegister(device, day(10)); // within the renewal window
  const { jws } = await client.activationCode(Math.floor(t.unixTimeMs() / 1000));
  // The device lost its key: a fresh client proves itself with the stored descriptor.
  const fresh = newClient(device);
  const renewed = await fresh.renewWithDescriptor(
    { productionNumber: activation.productionNumber, deviceId: device, validFrom: day(0), validTo: day(190) }, jws);
  assert.equal(renewed.status, "pending");
  assert.equal(fresh.apiKey(), renewed.apiKey);
  assert.equal((await refusal(fresh.handshake())).code, "pending_approval");
  assert.equal((await refusal(client.handshake())).code, "key_replaced");
  await approve(activation.activationId);
  assert.equal((await fresh.handshake()).validTo, day(190));
});

test("products: put, then a delta sync brings only what changed after the RVE", { skip }, async () => {
  const { client } = await approvedRegister(`js-products-${Date.now()}`, day(180));
  const kaffe = await client.putProduct({ id: "js-kaffe", name: "Kaffe", price: 2500, currency: "SEK", vatRate: 1200 });
  assert.ok(kaffe.updatedAt);
  assert.equal(kaffe.active, true);
  await client.putProduct({ id: "js-bulle", name: "Bulle", price: 3000, currency: "SEK", vatRate: 1200, barcode: "7310000000017" });
  // Changes come in the order they were made (the RVE is a version, no waiting).
  const first = await client.syncProducts();
  assert.deepEqual(first.products.map((p) => p.id), ["js-kaffe", "js-bulle"]);
  assert.equal(first.products[1].barcode, "7310000000017");
  assert.equal(first.more, false);
  assert.ok(first.rve);
  await client.putProduct({ id: "js-te", name: "Te", price: 2000, currency: "SEK", vatRate: 1200 });
  await client.putProduct({ ...first.products[1], active: false }); // Bulle withdrawn
  const delta = await client.syncProducts(first.rve);
  assert.deepEqual(delta.products.map((p) => p.id), ["js-te", "js-bulle"]); // not Kaffe
  assert.equal(delta.products[1].active, false);
  assert.equal(delta.more, false);
  assert.ok(delta.rve > first.rve);
});
