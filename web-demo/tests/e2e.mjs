// End-to-end test of the web demo in headless Chromium (Debian's, driven by
// playwright-core; no browser download) against a real tillgate-server in demo mode.
//
//   node web-demo/tests/e2e.mjs <demo URL> <screenshot dir>
//
// Walks the whole flow a POS developer sees, asserting what the page shows, saves a
// screenshot of each step and prints `web-demo: N passed, N failed`.
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";

const [url, shots] = process.argv.slice(2);
if (!url || !shots) {
  console.error("usage: node e2e.mjs <demo URL> <screenshot dir>");
  process.exit(2);
}
fs.mkdirSync(shots, { recursive: true });
const TIMEOUT = 15000;

let passed = 0;
let failed = 0;
let broken = null;
let n = 0;
let page;

class AssertionError extends Error {}
function assert(cond, msg) { if (!cond) throw new AssertionError(msg); }

/** Polls `fn` until it returns truthy (or throws the last assertion after the timeout). */
async function eventually(fn, msg, timeout = TIMEOUT) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
      last = null;
    } catch (e) { last = e; }
    if (Date.now() > end) throw new AssertionError(`${msg}${last ? ` (${last.message})` : ""}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
const text = (sel) => page.locator(sel).innerText();
const attr = (sel, a) => page.locator(sel).getAttribute(a);
async function textHas(sel, want) {
  return eventually(async () => (await text(sel)).includes(want), `${sel} should show "${want}", shows "${await text(sel).catch(() => "?")}"`);
}

async function shot(name, sectionSel) {
  if (sectionSel) {
    await page.locator(sectionSel).evaluate((e) => e.scrollIntoView({ block: "start" }));
  }
  await page.waitForTimeout(150);
  await page.screenshot({ path: path.join(shots, `${String(n).padStart(2, "0")}-${name}.png`) });
}

async function step(name, fn) {
  n += 1;
  if (broken) {
    failed += 1;
    console.log(`FAIL  ${n}. ${name}: not run, step "${broken}" failed`);
    return;
  }
  try {
    await fn();
    passed += 1;
    console.log(`ok    ${n}. ${name}`);
  } catch (e) {
    failed += 1;
    broken = name;
    console.log(`FAIL  ${n}. ${name}: ${e.message}`);
    await page.screenshot({ path: path.join(shots, `${String(n).padStart(2, "0")}-FAILED.png`), fullPage: true }).catch(() => {});
  }
}

const ctx = await chromium.launchPersistentContext(fs.mkdtempSync(path.join(os.tmpdir(), "chromium-")), {
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
page = ctx.pages()[0] ?? (await ctx.newPage());
const consoleErrors = [];
page.on("pageerror", (e) => consoleErrors.push(e.message));
page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(m.text()); });
// Every confirm() the page asks, answered "Cancel" unless a step sets acceptDialogs.
const dialogs = [];
let acceptDialogs = false;
page.on("dialog", (d) => { dialogs.push(d.message()); void (acceptDialogs ? d.accept() : d.dismiss()); });
const visible = (sel) => eventually(() => page.locator(sel).isVisible(), `${sel} should be visible`);
const ready = () => eventually(async () => (await attr("body", "data-ready")) === "true", "page should restart");
/** Turns the Offline switch (kept in sessionStorage across reloads) on or off. */
async function setOffline(on) {
  if ((await page.locator("#offline-toggle").isChecked()) !== on) await page.locator("label.switch").click();
  assert((await page.locator("#offline-toggle").isChecked()) === on, `offline switch should be ${on ? "on" : "off"}`);
}

const good = {};
let productionNumber = "";

try {
  await step("page loads; tillgate-core runs as WebAssembly in the browser", async () => {
    await page.goto(url);
    await eventually(async () => (await attr("body", "data-ready")) === "true", "page should finish starting");
    await textHas("#core-status", "tillgate-core loaded");
    await textHas("#admin-status", "Demo mode");
    assert((await text("#form-summary")).includes("Valid"), "the prefilled form should be valid");
    await shot("loaded");
  });

  await step("activation form: every validation error is shown next to its field", async () => {
    for (const f of ["cashRegisterName", "deviceId", "validFrom", "validTo", "corporateId", "applicationPackage", "country"]) {
      good[f] = await page.locator(`#f-${f}`).inputValue();
    }
    await page.fill("#f-cashRegisterName", "");
    await page.fill("#f-deviceId", "has space");
    await page.fill("#f-validTo", "2099-01-01T00:00:00Z");
    await page.fill("#f-corporateId", "556036-0794");
    await page.fill("#f-applicationPackage", "not a package");
    await page.fill("#f-country", "Sweden");
    await page.fill("#f-validFrom", good.validFrom.replace("T00:", "T12:"));
    const expected = {
      cashRegisterName: "must be 1 to 64 characters",
      deviceId: "visible ASCII",
      validFrom: "midnight UTC",
      corporateId: "check digit",
      applicationPackage: "reverse-DNS",
      country: "ISO 3166-1",
    };
    for (const [f, msg] of Object.entries(expected)) {
      await textHas(`#e-${f}`, msg);
      assert((await attr(`#f-${f}`, "aria-invalid")) === "true", `#f-${f} should be aria-invalid`);
    }
    await textHas("#form-summary", "6 problems");
    await shot("form-errors", "#register");
    // validTo is judged once validFrom is valid: more than a year later.
    await page.fill("#f-validFrom", good.validFrom);
    await eventually(async () => (await text("#e-validTo")).length > 0, "validTo should show its error");
    await textHas("#form-summary", "6 problems");
    await shot("form-errors-validTo", "#register");
    // Submitting an invalid form sends nothing.
    await page.click("#register-btn");
    assert(await page.locator("#registration").isHidden(), "an invalid form must not register");
  });

  await step("register the cash register; it is pending", async () => {
    for (const [f, v] of Object.entries(good)) await page.fill(`#f-${f}`, v);
    await textHas("#form-summary", "Valid");
    for (const f of Object.keys(good)) assert((await text(`#e-${f}`)) === "", `#e-${f} should be empty`);
    await page.click("#register-btn");
    await textHas("#register-pill", "pending");
    productionNumber = await eventually(async () => {
      const m = (await text("#registration-kv")).match(/ProductionNumber\s+(\S+)/);
      return m && m[1];
    }, "the ProductionNumber should be shown");
    await eventually(async () => (await attr("#handshake-light", "data-state")) === "pending", "handshake should be pending");
    await textHas("#handshake-text", "Pending approval");
    await textHas("#handshake-detail", "pending_approval");
    // The page asked the browser to keep its storage, and says what it answered.
    await textHas("#storage-status", "Persistent storage");
    await textHas("#registration-kv", "localStorage");
    await shot("pending", "#register");
    await shot("handshake-pending", "#handshake");
  });

  await step("demo admin panel (clearly marked) lists and approves the register", async () => {
    await textHas("#admin .demo-banner", "Demo only");
    const row = page.locator("#admin-table tbody tr", { hasText: productionNumber });
    await eventually(async () => (await row.count()) === 1, `admin table should list ${productionNumber}`);
    await shot("admin-pending", "#admin");
    await row.getByRole("button", { name: `Approve ${productionNumber}` }).click();
    await textHas("#admin-status", "Approved");
    await eventually(async () => (await row.count()) === 0, "the approved register should leave the pending list");
    await shot("admin-approved", "#admin");
  });

  await step("handshake turns green (server time signature verified in the browser)", async () => {
    await eventually(async () => (await attr("#handshake-light", "data-state")) === "green", "handshake light should turn green");
    await textHas("#handshake-text", "Approved: handshake OK");
    await textHas("#handshake-detail", "verified in the browser");
    await textHas("#register-pill", "approved");
    await shot("handshake-green", "#handshake");
  });

  await step("fetch the signed activation descriptor: claims and a VALID badge", async () => {
    await page.click("#descriptor-fetch-btn");
    await textHas("#descriptor-badge", "VALID");
    assert((await attr("#descriptor-badge", "data-state")) === "valid", "badge should be valid");
    const claims = await text("#descriptor-claims");
    assert(claims.includes(productionNumber), "claims should show the ProductionNumber");
    assert(claims.includes(good.deviceId), "claims should show the device id");
    assert(claims.includes("approved"), "claims should show status approved");
    assert(claims.includes("556036-0793"), "claims should show the company");
    await shot("descriptor-valid", "#descriptor");
  });

  await step("tamper flips a byte: verification fails with bad_signature", async () => {
    await page.click("#descriptor-tamper-btn");
    await textHas("#descriptor-badge", "INVALID: bad_signature");
    assert((await attr("#descriptor-badge", "data-state")) === "invalid", "badge should be invalid");
    await textHas("#descriptor-detail", "Flipped byte");
    await textHas("#descriptor-detail", "refuses to run");
    assert((await text("#descriptor-claims")) === "", "no claims should be shown for an invalid descriptor");
    await shot("descriptor-tampered", "#descriptor");
  });

  await step("at start the app re-checks the stored descriptor (tampered stays refused, restored is valid)", async () => {
    await page.reload();
    await eventually(async () => (await attr("body", "data-ready")) === "true", "page should restart");
    await textHas("#descriptor-badge", "INVALID: bad_signature");
    await page.click("#descriptor-fetch-btn");
    await textHas("#descriptor-badge", "VALID");
    await page.click("#descriptor-tamper-btn");
    await textHas("#descriptor-badge", "INVALID");
    await page.click("#descriptor-restore-btn");
    await textHas("#descriptor-badge", "✓ VALID");
    await eventually(async () => (await attr("#handshake-light", "data-state")) === "green", "handshake should be green after restart");
  });

  await step("URL-path token: built and parsed live as you type", async () => {
    await page.fill("#ut-token", "abc#def");
    await textHas("#ut-built", "/OpenApi_1,2,3,4$R20201201134216$$abc%23def/Products");
    await page.fill("#ut-rve", "20201301000000");
    await textHas("#ut-built", "url_invalid_rve");
    await page.fill("#ut-rve", "20201201134216");
    await page.fill("#ut-path", "/Gnap_7$R20240101000000$$TokenXYZ1234567890/Transactions");
    await textHas("#ut-parsed", "TokenXYZ1234567890");
    await textHas("#ut-parsed", "/Transactions");
    await page.fill("#ut-path", "/OpenApi_1,x$$tok/Products");
    await textHas("#ut-parse-error", "url_invalid_rm_system");
    await textHas("#ut-parse-error", "^ byte 11");
    assert((await attr("#ut-path", "aria-invalid")) === "true", "the path input should be aria-invalid");
    await shot("url-token", "#urltoken");
  });

  await step("API keys: generate, validate, reserved characters highlighted", async () => {
    await page.click("#ak-generate-btn");
    await textHas("#ak-result", "Valid API key (40 characters)");
    await page.selectOption("#ak-alphabet", "urlSafe");
    await page.fill("#ak-length", "64");
    await page.click("#ak-generate-btn");
    await textHas("#ak-result", "Valid API key (64 characters)");
    const key = await page.locator("#ak-input").inputValue();
    assert(!/[#%^]/.test(key), "a URL-safe key has no # % ^");
    await page.fill("#ak-input", "Abcdefghij|klmnop{qrstuv}wxyz é");
    await textHas("#ak-result", "api_key_reserved_char");
    await textHas("#ak-result", "3 reserved, 2 not allowed");
    assert((await page.locator("#ak-view mark.reserved").count()) === 3, "3 reserved characters highlighted");
    assert((await page.locator("#ak-view mark.invalid").count()) === 2, "2 not-allowed characters highlighted");
    await shot("api-keys", "#apikeys");
  });

  await step("ring up a sale online: stored by the server, receipt chain verified", async () => {
    await page.getByRole("button", { name: /Kaffe/ }).click();
    await page.getByRole("button", { name: /Kaffe/ }).click();
    await page.getByRole("button", { name: /Kanelbulle/ }).click();
    await textHas("#basket-total", "92,00 kr");
    await page.click("#pay-btn");
    await textHas("#sale-status", "Sent 1 sale");
    await textHas("#queue-count", "0");
    await textHas("#chain-badge", "Chain verified: 1 receipt");
    await textHas("#receipt-table", "92,00 kr");
    await shot("sale-online", "#sales");
  });

  await step("offline: sales fill the queue", async () => {
    await page.locator("label.switch").click();
    assert(await page.locator("#offline-toggle").isChecked(), "offline switch should be on");
    for (const p of [/Smörgås/, /Tygkasse/]) {
      await page.getByRole("button", { name: p }).click();
      await page.click("#pay-btn");
    }
    await page.getByRole("button", { name: /Kaffe/ }).click();
    await page.click("#pay-btn");
    await textHas("#queue-count", "3");
    await textHas("#queue-status", "3 sales waiting (offline)");
    await textHas("#queue-table", "network");  // the client's error code for an unreachable server
    await textHas("#sale-status", "Kept in the queue");
    await page.waitForTimeout(1500);
    await textHas("#queue-count", "3");
    await textHas("#chain-badge", "1 receipt");
    await shot("offline-queue", "#sales");
  });

  await step("the queue survives a restart while offline; the descriptor still verifies offline", async () => {
    await page.reload();
    await eventually(async () => (await attr("body", "data-ready")) === "true", "page should restart");
    assert(await page.locator("#offline-toggle").isChecked(), "offline switch should stay on");
    await textHas("#queue-count", "3");
    await textHas("#handshake-text", "Cannot reach the server");
    await textHas("#descriptor-badge", "✓ VALID");
    await shot("offline-restart", "#sales");
  });

  await step("back online: the queue drains, the chain of 4 receipts verifies", async () => {
    if (await page.locator("#offline-toggle").isChecked()) await page.locator("label.switch").click();
    await textHas("#queue-count", "0");
    await textHas("#queue-status", "Empty");
    await textHas("#chain-badge", "Chain verified: 4 receipts, seq 1–4");
    // The chain holds the newest receipt the register had seen and verified before.
    await textHas("#chain-badge", "as this register saw it");
    const rows = await page.locator("#receipt-table tbody tr").count();
    assert(rows === 4, `4 receipts listed, got ${rows}`);
    await shot("online-drained", "#sales");
    await shot("receipt-chain", "#receipts");
  });

  await step("a witness kept by an earlier version of the page moves into the outbox", async () => {
    const witnessOf = () => page.evaluate(() => JSON.parse(localStorage.getItem("tillgate-demo:queue:witness") ?? "null")?.receipt ?? null);
    const kept = await witnessOf();
    assert(typeof kept === "string" && kept.split(".").length === 3, `the outbox keeps a receipt as witness, got ${kept}`);
    // Offline across the reload: no check can run and store the chain's end as the
    // witness, so only adoptWitness can have put it there.
    await setOffline(true);
    // As an earlier version left it: the witness under the page's own key, none in the outbox.
    await page.evaluate((r) => {
      localStorage.removeItem("tillgate-demo:queue:witness");
      localStorage.setItem("tillgate-demo:witness", r);
    }, kept);
    await page.reload();
    await ready();
    assert(await page.locator("#offline-toggle").isChecked(), "offline switch should stay on");
    await textHas("#chain-badge", "Offline");
    assert(await witnessOf() === kept, "the outbox adopted the page's witness");
    assert(await page.evaluate(() => localStorage.getItem("tillgate-demo:witness")) === null, "the old key is dropped");
    await setOffline(false);
    await page.click("#receipts-btn");
    await textHas("#chain-badge", "holds receipt 4 as this register saw it");
  });

  await step("a sale that cannot be stored (storage full) is NOT SAVED and stays in the basket", async () => {
    await page.getByRole("button", { name: /Kanelbulle/ }).click();
    await textHas("#basket-total", "28,00 kr");
    // Fill the origin's localStorage until not even one more character fits.
    const filled = await page.evaluate(() => {
      let n = 0;
      for (let size = 1 << 20; size >= 1; size >>= 1) {
        for (;;) {
          try { localStorage.setItem(`fill-${n}`, "x".repeat(size)); n += 1; } catch { break; }
        }
      }
      return n;
    });
    assert(filled > 0, "localStorage should have been filled");
    await page.click("#pay-btn");
    await textHas("#sale-status", "NOT SAVED");
    await textHas("#sale-status", "storage_error");
    assert((await attr("#sale-status", "data-state")) === "unsaved", "a sale not saved is not shown as refused");
    assert((await text("#basket-total")).includes("28,00 kr"), "the basket is kept");
    await textHas("#queue-count", "0");
    await shot("not-saved", "#sales");
    // Room again: the same basket, paid again, is stored and sent once.
    await page.evaluate(() => { for (const k of Object.keys(localStorage)) if (k.startsWith("fill-")) localStorage.removeItem(k); });
    await page.click("#pay-btn");
    await textHas("#sale-status", "Sent 1 sale of 28,00 kr");
    await textHas("#basket-total", "0,00 kr");
    await textHas("#chain-badge", "Chain verified: 5 receipts, seq 1–5");
  });

  await step("a forked history kept in storage raises the alarm at start, offline too, and it stays", async () => {
    assert(await page.locator("#history-alarm").isHidden(), "no alarm before any problem");
    await setOffline(true);
    // The outbox's stored witness record, with a problem as the outbox records one.
    await page.evaluate(() => {
      const k = "tillgate-demo:queue:witness";
      const w = JSON.parse(localStorage.getItem(k));
      w.problem = { receipt: w.receipt, code: "witness_mismatch", atMs: Date.now(),
        message: "the server's receipt does not continue this register's witness" };
      localStorage.setItem(k, JSON.stringify(w));
    });
    await page.reload();
    await ready();
    assert(await page.locator("#offline-toggle").isChecked(), "offline switch should stay on");
    await visible("#history-alarm");
    await textHas("#history-alarm", "History FORKED: witness_mismatch");
    await textHas("#chain-badge", "Offline");
    await textHas("#handshake-text", "Cannot reach the server");
    await shot("alarm-offline");
    // Back online: the check runs; the alarm stays, whatever the badge says.
    await setOffline(false);
    await page.click("#receipts-btn");
    await textHas("#chain-badge", "History FORKED");
    await page.getByRole("button", { name: /Kaffe/ }).click();
    await page.click("#pay-btn");
    await textHas("#sale-status", "Sent 1 sale of 32,00 kr");
    await eventually(async () => (await page.locator("#receipt-table tbody tr").count()) === 6, "6 receipts listed");
    await textHas("#chain-badge", "History FORKED");
    assert(await page.locator("#history-alarm").isVisible(), "the alarm stays after a sale and a check");
    await shot("alarm-online");
  });

  await step("the queue lists unreadable records; forget is refused while sales are unsent or records unreadable", async () => {
    await setOffline(true);
    const bad = "tillgate-demo:queue:tx-999999";
    await page.evaluate((k) => localStorage.setItem(k, "{not a queue record"), bad);
    await page.reload();
    await ready();
    await textHas("#queue-status", "1 record in storage cannot be read");
    assert(!(await text("#queue-status")).includes("Empty"), "not empty while a record cannot be read");
    await textHas("#corrupt-list", bad);
    await page.getByRole("button", { name: /Smörgås/ }).click();
    await page.click("#pay-btn");
    await textHas("#sale-status", "Kept in the queue");
    await page.click("#forget-btn");
    await textHas("#forget-status", "Not forgotten");
    await textHas("#forget-status", "1 sale not yet sent");
    await textHas("#forget-status", "1 unreadable record");
    assert(dialogs.length === 0, `nothing asked: ${dialogs.join(" | ")}`);
    assert(await page.locator("#registration").isVisible(), "the register is kept");
    assert(await page.evaluate((k) => localStorage.getItem(k), bad) !== null, "the unreadable record is kept");
    await shot("forget-refused", "#sales");
    await textHas("#forget-status", "keep a copy of it");
    assert(!(await text("#forget-status")).includes("remove them"), "forget does not send the operator to delete records");
    // The stored value is shown before anything goes; Remove asks, naming what may be lost.
    await page.locator("#corrupt-list summary").first().click();
    await textHas("#corrupt-list", "{not a queue record");
    acceptDialogs = true;
    await page.getByRole("button", { name: `Remove unreadable record ${bad}` }).click();
    await eventually(() => page.locator("#corrupt-list").isHidden(), "the unreadable record should be gone");
    acceptDialogs = false;
    assert(dialogs.length === 1 && dialogs[0].includes("an unsent sale"), `Remove should ask, naming a sale: ${dialogs.join(" | ")}`);
    assert(await page.evaluate((k) => localStorage.getItem(k), bad) === null, "removed from storage");
    dialogs.length = 0;
    await setOffline(false);
    await textHas("#queue-count", "0");
    await textHas("#queue-status", "Empty");
    // Only the fork evidence is left: forgetting asks first, naming it (answered Cancel).
    await page.click("#forget-btn");
    await eventually(() => dialogs.length === 1, "forget should ask before deleting the evidence");
    assert(dialogs[0].includes("the evidence that the server's history forked"), `asked: ${dialogs[0]}`);
    await textHas("#forget-status", "Kept");
    assert(await page.locator("#registration").isVisible(), "the register is kept");
    assert(await page.locator("#history-alarm").isVisible(), "the evidence is kept");
  });

  await step("a sale another tab queued offline stops forget in this tab, whose own queue is empty", async () => {
    dialogs.length = 0;
    await setOffline(true);
    const other = await ctx.newPage();
    try {
      await other.goto(url);
      await eventually(async () => (await other.locator("body").getAttribute("data-ready")) === "true", "the second tab should start");
      await other.locator("label.switch").click();
      assert(await other.locator("#offline-toggle").isChecked(), "the second tab is offline");
      await other.getByRole("button", { name: /Kanelbulle/ }).click();
      await other.click("#pay-btn");
      await eventually(async () => (await other.locator("#sale-status").innerText()).includes("Kept in the queue"),
        "the second tab should queue the sale");
      await page.click("#forget-btn");
      await textHas("#forget-status", "Not forgotten");
      await textHas("#forget-status", "1 sale not yet sent");
      assert(dialogs.length === 0, `nothing asked: ${dialogs.join(" | ")}`);
      assert(await page.locator("#registration").isVisible(), "the register is kept");
      await shot("forget-refused-other-tab", "#registration");
      // The second tab back online sends it; this tab sees its queue empty again.
      await other.locator("label.switch").click();
      await eventually(async () => (await other.locator("#queue-count").innerText()).trim() === "0", "the second tab sends its sale");
    } finally {
      await other.close();
    }
    await setOffline(false);
    await textHas("#queue-count", "0");
  });

  await step("an unreadable witness record raises the alarm; Remove shows it and asks before deleting the evidence", async () => {
    dialogs.length = 0;
    const k = "tillgate-demo:queue:witness";
    const broken = "{not a witness record";
    await page.evaluate(([k, v]) => localStorage.setItem(k, v), [k, broken]);
    await page.reload();
    await ready();
    await visible("#history-alarm");
    await textHas("#history-alarm", "history evidence cannot be read");
    await textHas("#corrupt-list", k);
    await textHas("#corrupt-list", "the evidence of a forked history");
    await page.locator("#corrupt-list summary").first().click();
    await textHas("#corrupt-list", broken);
    await shot("witness-unreadable", "#sales");
    // Cancel: nothing is deleted.
    await page.getByRole("button", { name: `Remove unreadable record ${k}` }).click();
    await eventually(() => dialogs.length === 1, "Remove should ask first");
    assert(dialogs[0].includes("the evidence of a forked history"), `asked: ${dialogs[0]}`);
    await page.waitForTimeout(300);
    assert(await page.evaluate((k) => localStorage.getItem(k), k) === broken, "the record is kept after Cancel");
    assert(await page.locator("#corrupt-list").isVisible(), "still listed after Cancel");
    assert(await page.locator("#history-alarm").isVisible(), "the alarm stays after Cancel");
    // OK: removed.
    acceptDialogs = true;
    try {
      await page.getByRole("button", { name: `Remove unreadable record ${k}` }).click();
      await eventually(() => page.locator("#corrupt-list").isHidden(), "the record should be gone after OK");
    } finally {
      acceptDialogs = false;
    }
    assert(dialogs.length === 2, `asked again: ${dialogs.join(" | ")}`);
    assert(await page.evaluate((k) => localStorage.getItem(k), k) === null, "removed from storage after OK");
  });

  await step("the server cannot answer now (503 while it is upgraded): the sale waits in the queue for the time it named, then goes", async () => {
    await setOffline(false);
    let refusedPosts = 0;
    // What an older server answers beside a newer schema during a rolling upgrade.
    await page.route("**/transactions", async (route) => {
      if (route.request().method() !== "POST") return route.fallback();
      refusedPosts += 1;
      await route.fulfill({
        status: 503,
        headers: { "content-type": "application/problem+json", "retry-after": "3" },
        body: JSON.stringify({ type: "about:blank", title: "Service Unavailable", status: 503, code: "schema_newer",
          detail: "the database was migrated by a newer tillgate-server; retry, to reach an upgraded server" }),
      });
    });
    try {
      await page.getByRole("button", { name: /Kaffe/ }).click();
      await page.click("#pay-btn");
      await textHas("#sale-status", "the server cannot answer now (HTTP 503, schema_newer); next try in");
      const said = await text("#sale-status");
      assert(/next try in [23] s/.test(said), `the wait is the server's Retry-After (3 s): ${said}`);
      assert(!said.includes("back online"), "online: no talk of coming back online");
      await textHas("#queue-count", "1");
      await textHas("#queue-table", "schema_newer");
      await shot("server-cannot-answer", "#sales");
      // The queue's timer runs every second; it waits for the Retry-After, not its own
      // (shorter) backoff.
      await page.waitForTimeout(1500);
      assert(refusedPosts === 1, `no second try within the server's wait: ${refusedPosts} tries`);
    } finally {
      await page.unroute("**/transactions");
    }
    assert(refusedPosts >= 1, "the sale was offered to the server");
    // Sent by the queue's timer once the wait is over, no button pressed.
    await textHas("#queue-count", "0");
    await textHas("#sale-status", "Sent 1 sale from the queue");
  });

  await step("no errors in the browser console", async () => {
    // Expected: 403 pending_approval while polling, the 503 the test answered for the
    // upgrade, and the Offline switch's client calls to http://127.0.0.1:9, which the
    // browser refuses (ERR_UNSAFE_PORT).
    const real = consoleErrors.filter((m) => !/status of (403|404|503)|net::ERR_UNSAFE_PORT/.test(m));
    assert(real.length === 0, `console errors: ${real.join(" | ")}`);
    await page.screenshot({ path: path.join(shots, `${String(n).padStart(2, "0")}-full-page.png`), fullPage: true });
  });
} finally {
  await ctx.close();
}

console.log(`screenshots: ${shots}`);
console.log(`web-demo: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
