// A small app written against the npm package's generated TypeScript types, compiled
// with `tsc --noEmit` and `skipLibCheck: false` (scripts/test-wasm.sh): the .d.ts files
// must compile as shipped, and hold the members the bindings send at runtime. Never run.
import init, {
  Client, Outbox, TrustedKeys, productFromJson, productToJson, unixTimeMs, validateProduct, validateTransaction,
} from "tillgate/web";
import type {
  CorruptRecord, FieldError, Product, ProductDelta, QueueError, QueuedTransaction, RenewRequest,
  StoredTransaction, Submitted, SyncReport, TillgateError, Transaction, VerifiedHistory, WitnessProblem,
} from "tillgate/web";
import * as bundler from "tillgate";

export async function app(jwks: string, apiKey: string): Promise<string[]> {
  await init();
  const keys: TrustedKeys = TrustedKeys.fromJwksJson(jwks);
  const client = new Client({ baseUrl: "https://pos.example", deviceId: "till-7", timeoutMs: 5000 }, keys);
  client.setApiKey(apiKey);
  const outbox: Outbox = await Outbox.openLocalStorage("app:queue:");
  const sale: Transaction = {
    type: "sale", currency: "SEK", total: 3200,
    items: [{ name: "Kaffe", quantity: 1, amount: 3200 }], vat: [{ rate: 1200, amount: 343 }],
  };
  validateTransaction(sale);
  const out: string[] = [];
  const r: Submitted = await outbox.submit(client, sale, "till-7:receipt-000042", unixTimeMs());
  if (r.kind === "sent") {
    const s: StoredTransaction = r.stored;
    out.push(s.id, String(s.sequence), s.createdAt, s.productionNumber, s.txh, s.receipt, s.currency);
  } else if (r.kind === "refused") {
    // Kept in the queue, marked failed: the server's code, status and failing fields.
    const why: QueueError = r.error;
    const fields: FieldError[] = why.fields ?? [];
    out.push(r.idempotencyKey, why.code, why.message, String(why.atMs), String(why.httpStatus ?? ""),
      ...fields.map((f) => `${f.field}: ${f.code}: ${f.message}`));
  } else {
    const queuedKey: string = r.idempotencyKey;
    out.push(queuedKey);
  }
  const report: SyncReport = await outbox.syncNow(client, unixTimeMs());
  const problem: WitnessProblem | null | undefined = report.witnessProblem ?? outbox.witnessProblem();
  if (problem) out.push(`${problem.code}: ${problem.message} at ${problem.atMs}`);
  const queued: QueuedTransaction[] = outbox.entries();
  for (const e of queued) out.push(e.state, e.lastError?.code ?? "");
  const corrupt: CorruptRecord[] = outbox.corruptRecords();
  for (const c of corrupt) await outbox.removeCorrupt(c.name);
  const history: VerifiedHistory = await outbox.verifyHistory(client);
  out.push(...history.receipts.map((c) => c.txid), outbox.witness() ?? "");
  // The operator was shown `problem` (or none): a different one another tab kept is answered.
  const kept: WitnessProblem | undefined = await outbox.resetWitnessSeen(problem);
  if (kept) out.push(kept.code);

  const kaffe: Product = { id: "kaffe", name: "Kaffe", price: 3200, currency: "SEK", vatRate: 1200 };
  validateProduct(kaffe);
  const body: string = productToJson(kaffe);
  const read: Product = productFromJson(kaffe.id, body);
  out.push(body, read.name);
  const stored: Product = await client.putProduct({ ...kaffe, active: false });
  out.push(stored.updatedAt ?? "");
  const delta: ProductDelta = await client.syncProducts(null);
  if (delta.more) await client.syncProducts(delta.rve);
  // @ts-expect-error: a misspelt member is no Product (the binding refuses it too).
  const misspelt: Product = { ...kaffe, actve: false };
  out.push(misspelt.id);

  const renewal: RenewRequest = {
    productionNumber: "TG-7Q2M-K4PX", deviceId: "till-7",
    validFrom: "2026-01-01T00:00:00Z", validTo: "2026-12-31T00:00:00Z", descriptor: null,
  };
  out.push((await client.renew(renewal)).apiKey);
  try {
    await client.handshake();
  } catch (e) {
    const t = e as TillgateError;
    out.push(t.code, t.message);
    // Try later (unreachable, 429, 5xx), after the server's Retry-After when it named one.
    const transient: boolean = t.transient === true;
    const waitMs: number | undefined = t.retryAfterMs;
    const status: number | undefined = t.httpStatus;
    const auth: boolean | undefined = t.auth;
    if (transient) out.push(`try again in ${Math.ceil((waitMs ?? 0) / 1000)} s`);
    if (auth) out.push(`HTTP ${status ?? "?"}: the register must be approved, renewed or activated`);
  }
  client.free();
  outbox.free();
  return out;
}

// The bundler entry point (`"."`) has the same classes, without an init function.
export function bundlerClient(jwks: string): bundler.Client {
  return new bundler.Client({ baseUrl: "https://pos.example" }, bundler.TrustedKeys.fromJwksJson(jwks));
}
