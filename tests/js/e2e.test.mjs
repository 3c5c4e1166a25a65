// End-to-end activation in node against a running tillgate-server through the npm
// package's client (Promises). Skipped unless TILLGATE_URL is set.
import { test } from "node:test";
import assert from "node:assert/strict";
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
