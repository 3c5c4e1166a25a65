// Tillgate web POS demo: the page's logic. Every rule runs in tillgate-core and every
// call the register makes to the server goes through tillgate-client, both from the
// `tillgate` npm package (WebAssembly): `Client` (activation, handshake, activation code,
// transactions) and `Outbox` (the offline queue in localStorage). This file only wires
// the page to them. The demo admin panel uses plain fetch (backoffice.ts): the admin
// API is not the register's.

import init, {
  Client, Outbox, TrustedKeys, encodeUrlToken, generateApiKey, parseUrlToken, unixTimeMs,
  validateActivationRequest, validateApiKey, validateTransaction,
} from "tillgate/web";
import type {
  ActivationRequest, ApiKeyAlphabet, CorruptRecord, SyncReport, TillgateError, Transaction,
  UrlToken, WitnessProblem,
} from "tillgate/web";
import { AdminActivation, HttpError, request } from "./backoffice.js";

// ---- small DOM helpers --------------------------------------------------------------

function $<T extends HTMLElement = HTMLElement>(id: string): T {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
}
function el<K extends keyof HTMLElementTagNameMap>(tag: K, props: Partial<HTMLElementTagNameMap[K]> = {}, ...kids: (Node | string)[]): HTMLElementTagNameMap[K] {
  const e = Object.assign(document.createElement(tag), props);
  e.append(...kids);
  return e;
}
function setState(e: HTMLElement, state: string, text?: string): void {
  e.dataset.state = state;
  if (text !== undefined) e.textContent = text;
}
function fillKv(dl: HTMLElement, rows: [string, string][]): void {
  dl.replaceChildren(...rows.flatMap(([k, v]) => [el("dt", { textContent: k }), el("dd", { textContent: v })]));
}
const asTg = (e: unknown) => e as TillgateError;
const money = (minor: number) => `${(minor / 100).toFixed(2).replace(".", ",")} kr`;
const nowSecs = () => Math.floor(unixTimeMs() / 1000);
const short = (s: string, n = 10) => (s.length > n ? `${s.slice(0, n)}…` : s);
/** The client says so: trying again later may work as it is. The server could not be
 * reached or timed out (no HTTP status), or it answered that it cannot serve now (429,
 * a 5xx such as 503 `schema_newer` while it is upgraded). Not a refusal: sales stay
 * queued. Core's errors and the admin panel's have no `transient`. */
const isTransient = (e: unknown) => asTg(e)?.transient === true;
/** A transient error without an answer from the server: it could not be reached. */
const isUnreachable = (e: unknown) => isTransient(e) && asTg(e).httpStatus === undefined;
/** ", try again in N s" when the server named a Retry-After. */
function retryText(e: unknown): string {
  const ms = asTg(e)?.retryAfterMs;
  return ms === undefined ? "" : `, try again in ${Math.ceil(ms / 1000)} s`;
}
/** What a transient error says in a status line. */
function unavailableText(e: unknown): string {
  const t = asTg(e);
  return isUnreachable(e)
    ? `offline: the server cannot be reached (${t.code})`
    : `the server cannot answer now (HTTP ${t.httpStatus}, ${t.code})${retryText(e)}`;
}
function errText(e: unknown): string {
  if (e instanceof HttpError) return `${e.code}: ${e.message}`;
  if (isTransient(e)) return unavailableText(e);
  const t = asTg(e);
  return t && t.code ? `${t.code}: ${t.message}` : String(e);
}

/** `errText` for a status line: a storage error's message can carry the browser's
 * whole stack trace; the first sentences are the cause. */
function briefErrText(e: unknown): string {
  const t = errText(e).split(/ at (?:https?|file):\/\//)[0];
  return t.length > 240 ? `${t.slice(0, 239)}…` : t;
}

// ---- state kept by the "app" --------------------------------------------------------

interface Registration {
  activationId: string; productionNumber: string; apiKey: string; status: string;
  cashRegisterName: string; deviceId: string; applicationPackage: string;
  validFrom: string; validTo: string; corporateId: string;
}
const K = {
  registration: "tillgate-demo:registration",
  descriptor: "tillgate-demo:descriptor",
  timeFloor: "tillgate-demo:trusted-time-floor",
  /** The client's localStorage queue: one key per sale, `<prefix>tx-<id>`, and the
   * register's witness of the server's history, `<prefix>witness`. */
  queue: "tillgate-demo:queue:",
  jwks: "tillgate-demo:pinned-jwks",
  offline: "tillgate-demo:offline",
  /** The activation under way: its Idempotency-Key and request, kept until an answer. */
  activation: "tillgate-demo:activation-attempt",
};
/** Where earlier versions of this page kept the register's witness (now the outbox's). */
const OLD_WITNESS = "tillgate-demo:witness";
/** Where the Offline switch points the client: port 9 (discard), where nothing answers
 * (browsers refuse it at once), so every call fails as a lost network would. */
const OFFLINE_URL = "http://127.0.0.1:9";
let reg: Registration | null = JSON.parse(localStorage.getItem(K.registration) ?? "null") as Registration | null;
let trusted: TrustedKeys | null = null;
let adminKey: string | null = null;
let pollTimer: number | undefined;
let originalDescriptor: string | null = null;
let offlineMode = false;
let paying = false;
/** The register's clients: the same register (key, device, package, trusted time floor)
 * pointed at the server, and at OFFLINE_URL while the Offline switch is on. */
let online: Client | null = null;
let offline: Client | null = null;
let outbox: Outbox;

function saveReg(): void {
  if (reg) localStorage.setItem(K.registration, JSON.stringify(reg));
  else localStorage.removeItem(K.registration);
}

function isOffline(): boolean { return offlineMode; }
function newClient(baseUrl: string, deviceId: string, applicationPackage: string): Client {
  if (!trusted) throw Object.assign(new Error("the server's keys are not loaded"), { code: "no_trusted_keys" });
  return new Client({ baseUrl, deviceId, applicationPackage, timeoutMs: 5000 }, trusted);
}
/** Builds the register's clients from what the app kept: API key and trusted time floor. */
function connect(): void {
  online?.free();
  offline?.free();
  online = offline = null;
  if (!reg || !trusted) return;
  online = newClient(location.origin, reg.deviceId, reg.applicationPackage);
  offline = newClient(OFFLINE_URL, reg.deviceId, reg.applicationPackage);
  const floor = Number(localStorage.getItem(K.timeFloor) ?? "0");
  for (const c of [online, offline]) {
    c.setApiKey(reg.apiKey);
    if (floor > 0) c.restoreTrustedTimeFloor(floor);
  }
}
/** The client for the register's network calls (honours the Offline switch). */
function api(): Client | null { return offlineMode ? offline : online; }

// ---- 1. activation form -------------------------------------------------------------

const FIELDS = ["cashRegisterName", "deviceId", "validFrom", "validTo", "corporateId", "applicationPackage", "country"] as const;
type Field = (typeof FIELDS)[number];
const input = (f: Field) => $<HTMLInputElement>(`f-${f}`);

function midnightUtc(d: Date): string {
  return `${d.toISOString().slice(0, 10)}T00:00:00Z`;
}
function defaults(): Record<Field, string> {
  const today = new Date();
  const rnd = new Uint8Array(4);
  crypto.getRandomValues(rnd);
  return {
    cashRegisterName: "Kassa 1",
    deviceId: `web-${Array.from(rnd, (b) => b.toString(16).padStart(2, "0")).join("")}`,
    validFrom: midnightUtc(today),
    validTo: midnightUtc(new Date(today.getTime() + 365 * 86400_000)),
    corporateId: "556036-0793",
    applicationPackage: "com.example.pos",
    country: "SE",
  };
}
function formValues(): ActivationRequest {
  const v: Record<string, string> = {};
  for (const f of FIELDS) v[f] = input(f).value;
  return v as ActivationRequest;
}
function showFieldErrors(errors: { field: string; message: string; code: string }[]): void {
  for (const f of FIELDS) {
    const mine = errors.filter((e) => e.field === f);
    $(`e-${f}`).textContent = mine.map((e) => e.message).join("; ");
    input(f).setAttribute("aria-invalid", mine.length ? "true" : "false");
  }
}
/** Live check with core; returns whether the form is valid. */
function validateForm(): boolean {
  const summary = $("form-summary");
  try {
    validateActivationRequest(formValues(), "swedishOrgNumber");
    showFieldErrors([]);
    setState(summary, "ok", "✓ Valid: checked in the browser by tillgate-core");
    return true;
  } catch (e) {
    const fields = asTg(e).fields ?? [];
    showFieldErrors(fields);
    const n = fields.length;
    setState(summary, "bad", n ? `${n} problem${n === 1 ? "" : "s"} to fix` : errText(e));
    return false;
  }
}

async function register(ev: SubmitEvent): Promise<void> {
  ev.preventDefault();
  if (!validateForm()) {
    const first = FIELDS.find((f) => input(f).getAttribute("aria-invalid") === "true");
    if (first) input(first).focus();
    return;
  }
  const btn = $<HTMLButtonElement>("register-btn");
  btn.disabled = true;
  try {
    const req = formValues();
    // The activation's key is stored before the first send and reused with the same
    // request until an answer arrives (also after a reload): a repeat after a lost answer
    // gets the registration the first send created, with a fresh API key, not another.
    const earlier = JSON.parse(localStorage.getItem(K.activation) ?? "null") as { key: string; request: string } | null;
    const request = JSON.stringify(req);
    const key = earlier?.request === request ? earlier.key : crypto.randomUUID();
    localStorage.setItem(K.activation, JSON.stringify({ key, request }));
    // The client checks the request with core, sends it, and keeps the returned key.
    const client = newClient(isOffline() ? OFFLINE_URL : location.origin, req.deviceId ?? "", req.applicationPackage ?? "");
    const created = await client.activateWithKey(req, key)
      .catch((e: unknown) => {
        // Refused for good (a 4xx: a bad field, a decided registration): the next try is
        // a new activation with a new key. Not a redirect (`unexpected_redirect`).
        if (!isTransient(e) && (asTg(e).httpStatus ?? 0) >= 400) localStorage.removeItem(K.activation);
        throw e;
      })
      .finally(() => client.free());
    localStorage.removeItem(K.activation);
    reg = {
      activationId: created.activationId, productionNumber: created.productionNumber,
      apiKey: created.apiKey, status: created.status, cashRegisterName: req.cashRegisterName ?? "",
      deviceId: req.deviceId ?? "", applicationPackage: req.applicationPackage ?? "",
      validFrom: created.validFrom ?? req.validFrom ?? "", validTo: created.validTo ?? req.validTo ?? "",
      corporateId: req.corporateId ?? "",
    };
    saveReg();
    localStorage.removeItem(K.timeFloor);
    connect();
    localStorage.removeItem(K.descriptor);
    setState($("form-summary"), "ok", `Registered as ${created.productionNumber}: waiting for approval`);
    renderRegistration();
    void askPersistentStorage();
    void refreshAdmin();
    void handshake();
  } catch (e) {
    const fields = asTg(e).fields ?? [];
    if (fields.length) showFieldErrors(fields);
    setState($("form-summary"), "bad", `${fields.length ? "Refused" : "The server refused"}: ${errText(e)}`);
  } finally {
    btn.disabled = reg !== null;
  }
}

function renderRegistration(): void {
  const box = $("registration");
  const pill = $("register-pill");
  const has = reg !== null;
  box.hidden = !has;
  for (const f of FIELDS) input(f).disabled = has;
  $<HTMLButtonElement>("register-btn").disabled = has;
  for (const id of ["handshake-btn", "descriptor-fetch-btn", "receipts-btn"]) $<HTMLButtonElement>(id).disabled = !has;
  if (!reg) {
    setState(pill, "none", "No register yet");
    return;
  }
  fillKv($("registration-kv"), [
    ["ProductionNumber", reg.productionNumber],
    ["Activation id", reg.activationId],
    ["Status", reg.status],
    ["API key", `${reg.apiKey.slice(0, 6)}… (shown once by the server; this demo keeps it in localStorage, where any script on this origin can read it)`],
    ["Valid", `${reg.validFrom} → ${reg.validTo}`],
    ["Company", reg.corporateId],
  ]);
  const state = reg.status === "approved" ? "approved" : reg.status === "pending" ? "pending" : "refused";
  setState(pill, state, `${reg.cashRegisterName} · ${reg.productionNumber} · ${reg.status}`);
  $<HTMLButtonElement>("pay-btn").disabled = basket.length === 0;
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

/** Starts over with a new register. Refused while the queue holds sales that have not
 * reached the server or records it cannot read (they would be lost for good); what is
 * left (sales the server refused, the evidence of a forked history) goes only after the
 * user confirmed, by name and number, and through the outbox (never by deleting its
 * keys behind its back). */
async function forget(): Promise<void> {
  const out = $("forget-status");
  // This tab's outbox knows only what it has read: other tabs' sales (and records) join
  // at a sync, which takes them in before it sends anything (offline too).
  let r = await syncQueue();
  // The timer's sync may be under way: wait for it a little.
  for (let i = 0; r?.alreadyRunning && i < 20; i++) {
    await new Promise((done) => setTimeout(done, 100));
    r = await syncQueue();
  }
  if (!r || r.alreadyRunning) {
    setState(out, "bad", `Not forgotten: ${r ? "the queue is being sent right now" : "the queue cannot be checked (no client)"}; ` +
      "try again in a moment.");
    return;
  }
  const pending = outbox.length;
  const corrupt = outbox.corruptRecords().length;
  if (pending || corrupt) {
    const what = [pending ? `${plural(pending, "sale")} not yet sent to the server` : "",
      corrupt ? `${plural(corrupt, "unreadable record")} in storage` : ""].filter(Boolean).join(" and ");
    setState(out, "bad", `Not forgotten: the queue holds ${what}. ` +
      `${pending ? "Go online and let the queue send them first" : ""}${pending && corrupt ? "; " : ""}` +
      `${corrupt ? "an unreadable record may hold an unsent sale or the evidence of a forked history: " +
        "keep a copy of it (shown in the queue below) for the register's supplier before anything is removed" : ""}.`);
    return;
  }
  const failed = outbox.entries().filter((e) => e.state === "failed");
  // The evidence the user is asked about: only this goes, never one found after.
  const shown = outbox.witnessProblem();
  const lose = [failed.length ? `${plural(failed.length, "sale")} the server refused` : "",
    shown ? "the evidence that the server's history forked" : ""].filter(Boolean);
  if (lose.length && !window.confirm(`Forget this register and delete ${lose.join(" and ")} for good?`)) {
    setState(out, "none", "Kept.");
    return;
  }
  try {
    for (const e of failed) await outbox.discard(e.idempotencyKey);
    // Another tab may have found evidence while the user was asked: it is kept, shown,
    // and the register stays until the user has seen it and forgets again.
    const kept = await outbox.resetWitnessSeen(shown);
    if (kept) {
      renderAlarm();
      setState(out, "bad", "Not forgotten: another tab has just found evidence that the server's " +
        `history forked (${kept.code}, shown above). Look at it, then forget again.`);
      return;
    }
  } catch (e) {
    setState(out, "bad", `Not forgotten: ${errText(e)}`);
    return;
  }
  reg = null;
  saveReg();
  localStorage.removeItem(K.descriptor);
  localStorage.removeItem(K.timeFloor);
  localStorage.removeItem(K.jwks);
  window.clearInterval(pollTimer);
  location.reload();
}

/** Asks the browser to keep this origin's storage (the queue, the witness, the key)
 * under storage pressure, and shows the answer. Without it the browser may evict it. */
async function askPersistentStorage(): Promise<void> {
  const out = $("storage-status");
  if (!navigator.storage?.persist) {
    setState(out, "bad", "Persistent storage: not offered by this browser; the queue in localStorage may be evicted.");
    return;
  }
  try {
    const granted = await navigator.storage.persist();
    setState(out, granted ? "ok" : "bad", granted
      ? "Persistent storage: granted (navigator.storage.persist()); the browser keeps the queue under storage pressure."
      : "Persistent storage: NOT granted (navigator.storage.persist() said no); the browser may evict the queue under storage pressure.");
  } catch (e) {
    setState(out, "bad", `Persistent storage: the request failed (${errText(e)}).`);
  }
}
/** What the browser says now, without asking (at start). */
async function showPersistentStorage(): Promise<void> {
  const out = $("storage-status");
  if (!navigator.storage?.persisted) return;
  const granted = await navigator.storage.persisted().catch(() => false);
  setState(out, granted ? "ok" : "bad", granted
    ? "Persistent storage: granted; the browser keeps the queue under storage pressure."
    : "Persistent storage: not granted; the browser may evict the queue under storage pressure.");
}

// ---- 2. handshake -------------------------------------------------------------------

function setLight(state: "none" | "pending" | "green" | "red", text: string, detail = ""): void {
  setState($("handshake-light"), state);
  $("handshake-text").textContent = text;
  $("handshake-detail").textContent = detail;
}

async function handshake(): Promise<void> {
  const client = api();
  if (!reg || !client) return;
  try {
    // The client sends a fresh nonce; the server's signed time must echo it and verify
    // against the pinned keys, and then becomes the client's trusted time floor.
    const h = await client.handshake();
    const floor = client.trustedTimeFloor() ?? h.serverTime;
    localStorage.setItem(K.timeFloor, String(floor));
    for (const c of [online, offline]) c?.restoreTrustedTimeFloor(floor);
    reg.status = h.status;
    saveReg();
    const at = new Date(h.serverTime * 1000).toISOString().replace(".000", "");
    setLight("green", "Approved: handshake OK",
      `Server time ${at}, signature and nonce verified in the browser; kept as the trusted time floor (iat ${floor}).`);
    stopPolling();
  } catch (e) {
    const code = asTg(e).code;
    if (code === "pending_approval") {
      reg.status = "pending";
      setLight("pending", "Pending approval", "The server answered 403 pending_approval. Approve the register in the admin panel below.");
      startPolling();
    } else if (code === "rejected" || code === "revoked") {
      reg.status = code;
      setLight("red", `Refused: ${code}`, asTg(e).message);
      stopPolling();
    } else if (isUnreachable(e)) {
      setLight("red", "Cannot reach the server", "Offline: the handshake needs the server. Sales still work through the queue.");
    } else if (isTransient(e)) {
      // Busy (429) or unavailable (5xx, e.g. an upgrade under way): not a refusal.
      setLight("red", "Server not available now",
        `${unavailableText(e)}. Sales still work through the queue.`);
    } else {
      setLight("red", "Handshake failed", errText(e));
    }
    saveReg();
  }
  renderRegistration();
}
function startPolling(): void {
  if (pollTimer === undefined) pollTimer = window.setInterval(() => void handshake(), 2000);
}
function stopPolling(): void {
  window.clearInterval(pollTimer);
  pollTimer = undefined;
}

// ---- 3. demo admin ------------------------------------------------------------------

async function loadAdminKey(): Promise<void> {
  try {
    const r = await request<{ adminKey: string }>("/demo/admin-key.json");
    adminKey = r.adminKey;
    $("admin-status").textContent = "Demo mode: the server handed this page its admin key.";
    $<HTMLButtonElement>("admin-refresh-btn").disabled = false;
    void refreshAdmin();
  } catch {
    $("admin-status").textContent =
      "The server is not in demo mode (TILLGATE_DEMO_MODE=true), so it keeps its admin key to itself. Paste the admin key to use this panel.";
    $("admin-key-form").hidden = false;
  }
}

async function refreshAdmin(): Promise<void> {
  if (!adminKey) return;
  const table = $<HTMLTableElement>("admin-table");
  try {
    const list = await request<{ items: AdminActivation[] }>("/admin/activations?status=pending", { adminKey });
    const rows = list.items.map((a) => {
      const approve = el("button", { type: "button", className: "primary", textContent: "Approve" });
      approve.setAttribute("aria-label", `Approve ${a.productionNumber}`);
      approve.addEventListener("click", () => void decide(a.activationId, "approve"));
      const reject = el("button", { type: "button", className: "quiet", textContent: "Reject" });
      reject.setAttribute("aria-label", `Reject ${a.productionNumber}`);
      reject.addEventListener("click", () => void decide(a.activationId, "reject"));
      return el("tr", {},
        el("td", {}, el("span", { className: "mono", textContent: a.productionNumber })),
        el("td", { textContent: a.cashRegisterName }),
        el("td", {}, el("span", { className: "mono", textContent: a.deviceId })),
        el("td", { textContent: a.corporateId }),
        el("td", { textContent: a.status }),
        el("td", {}, approve, " ", reject));
    });
    table.tBodies[0].replaceChildren(...rows);
    table.hidden = rows.length === 0;
    $("admin-empty").hidden = rows.length !== 0;
  } catch (e) {
    $("admin-status").textContent = `Admin request failed: ${errText(e)}`;
  }
}

async function decide(id: string, what: "approve" | "reject"): Promise<void> {
  if (!adminKey) return;
  try {
    await request(`/admin/activations/${encodeURIComponent(id)}/${what}`, {
      method: "POST", adminKey,
      body: { decidedBy: "web demo admin", note: `${what}d in the web demo (demo mode)` },
    });
    $("admin-status").textContent = `${what === "approve" ? "Approved" : "Rejected"} ${id}.`;
  } catch (e) {
    $("admin-status").textContent = `Admin request failed: ${errText(e)}`;
  }
  await refreshAdmin();
  await handshake();
}

// ---- 4. descriptor ------------------------------------------------------------------

function b64urlDecode(s: string): Uint8Array {
  const bin = atob(s.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((s.length + 3) % 4));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}
function b64urlEncode(b: Uint8Array): string {
  return btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** Checks the stored descriptor the way the app does at every start. */
function checkDescriptor(): boolean {
  const jws = localStorage.getItem(K.descriptor);
  const badge = $("descriptor-badge");
  $("descriptor-jws").textContent = jws ?? "";
  $<HTMLButtonElement>("descriptor-tamper-btn").disabled = !jws;
  if (!jws || !online) {
    setState(badge, "none", "No descriptor");
    return false;
  }
  try {
    // Offline, by the client: the pinned keys, this device and package, valid now, and
    // the clock not behind the trusted time floor.
    const v = online.verifyStoredDescriptor(jws, nowSecs());
    const c = v.claims;
    setState(badge, "valid", "✓ VALID");
    $("descriptor-detail").textContent = `Signed by key ${v.kid}; this device and package match; valid now.`;
    const day = (s: number) => new Date(s * 1000).toISOString().replace(".000", "");
    fillKv($("descriptor-claims"), [
      ["Issuer (iss)", c.iss], ["ProductionNumber (sub)", c.sub], ["Status", c.status],
      ["Register", c.cashRegisterName], ["Device id", c.deviceId], ["Company", `${c.corporateId} (${c.country})`],
      ["Application", c.applicationPackage], ["Valid", `${day(c.nbf)} → ${day(c.exp)}`],
      ["Issued at", day(c.iat)], ["Activation id", c.activationId],
    ]);
    return true;
  } catch (e) {
    const t = asTg(e);
    setState(badge, "invalid", `✗ INVALID: ${t.code ?? "error"}`);
    $("descriptor-detail").textContent = `${t.message}. The app refuses to run with this descriptor.`;
    $("descriptor-claims").replaceChildren();
    return false;
  }
}

async function fetchDescriptor(): Promise<void> {
  const client = api();
  if (!client) return;
  const badge = $("descriptor-badge");
  setState(badge, "busy", "Fetching…");
  try {
    // Fetched and verified by the client; kept for offline starts.
    const code = await client.activationCode(nowSecs());
    localStorage.setItem(K.descriptor, code.jws);
    originalDescriptor = code.jws;
    $<HTMLButtonElement>("descriptor-restore-btn").disabled = true;
    checkDescriptor();
  } catch (e) {
    setState(badge, "invalid", `Not fetched: ${isUnreachable(e) ? "offline"
      : isTransient(e) ? `the server cannot answer now${retryText(e)}` : asTg(e).code}`);
    $("descriptor-detail").textContent = errText(e);
  }
}

/** Flips one bit of one byte of the signed payload (inside the register name), as an
 * edited local database would. */
function tamper(): void {
  const jws = localStorage.getItem(K.descriptor);
  if (!jws) return;
  originalDescriptor ??= jws;
  const [h, p, s] = jws.split(".");
  const bytes = b64urlDecode(p);
  const text = new TextDecoder().decode(bytes);
  const marker = text.indexOf('"cashRegisterName":"');
  const i = marker >= 0 ? marker + '"cashRegisterName":"'.length : Math.floor(bytes.length / 2);
  const before = String.fromCharCode(bytes[i]);
  bytes[i] ^= 0x01;
  localStorage.setItem(K.descriptor, `${h}.${b64urlEncode(bytes)}.${s}`);
  $<HTMLButtonElement>("descriptor-restore-btn").disabled = false;
  checkDescriptor();
  $("descriptor-detail").textContent =
    `Flipped byte ${i} of the payload ('${before}' → '${String.fromCharCode(bytes[i])}'): ` + $("descriptor-detail").textContent;
}

function restoreDescriptor(): void {
  if (originalDescriptor) localStorage.setItem(K.descriptor, originalDescriptor);
  $<HTMLButtonElement>("descriptor-restore-btn").disabled = true;
  checkDescriptor();
}

// ---- 5. sales and the offline queue --------------------------------------------------

const PRODUCTS = [
  { name: "Kaffe", amount: 3200, vat: 1200 },
  { name: "Kanelbulle", amount: 2800, vat: 1200 },
  { name: "Smörgås", amount: 6500, vat: 1200 },
  { name: "Tygkasse", amount: 4900, vat: 2500 },
];
const basket: { name: string; amount: number; vat: number; quantity: number }[] = [];

/** While a sale is being saved its basket cannot change (it is cleared once saved). */
let basketLocked = false;

function renderBasket(): void {
  const ul = $("basket-lines");
  if (basket.length === 0) ul.replaceChildren(el("li", { className: "muted", textContent: "Empty" }));
  else ul.replaceChildren(...basket.map((l) => el("li", {}, el("span", { textContent: `${l.quantity} × ${l.name}` }), el("span", { textContent: money(l.amount * l.quantity) }))));
  $("basket-total").textContent = money(basket.reduce((s, l) => s + l.amount * l.quantity, 0));
  $<HTMLButtonElement>("pay-btn").disabled = basket.length === 0 || !reg || paying;
  for (const b of $("products").querySelectorAll("button")) b.disabled = basketLocked;
  $<HTMLButtonElement>("clear-btn").disabled = basketLocked;
}

function basketTransaction(): Transaction {
  const items = basket.map((l) => ({ name: l.name, quantity: l.quantity, amount: l.amount * l.quantity }));
  const total = items.reduce((s, i) => s + i.amount, 0);
  const byRate = new Map<number, number>();
  for (const l of basket) {
    const gross = l.amount * l.quantity;
    byRate.set(l.vat, (byRate.get(l.vat) ?? 0) + Math.round((gross * l.vat) / (10000 + l.vat)));
  }
  const vat = [...byRate].sort((a, b) => a[0] - b[0]).map(([rate, amount]) => ({ rate, amount }));
  return { type: "sale", currency: "SEK", total, items, vat };
}

/** A new Idempotency-Key for a sale: 128 random bits. */
function newIdempotencyKey(): string {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return `sale-${Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("")}`;
}
/** The key of the last sale that could not be saved, with that sale: paying for the
 * same basket again reuses it, so the sale can never be booked twice. */
let unsaved: { key: string; json: string } | null = null;
const isQueued = (key: string) => outbox.entries().some((e) => e.idempotencyKey === key);

/** The witness problem, if it is new since `before` or came with this receipt. */
function newProblem(before: WitnessProblem | undefined, receipts: string[]): WitnessProblem | undefined {
  const p = outbox.witnessProblem();
  if (!p) return undefined;
  return !before || before.receipt !== p.receipt || receipts.includes(p.receipt) ? p : undefined;
}

async function pay(): Promise<void> {
  const client = api();
  if (!client || paying) return;
  const tx = basketTransaction();
  const status = $("sale-status");
  try {
    validateTransaction(tx);
  } catch (e) {
    setState(status, "bad", `Not a valid sale: ${errText(e)}`);
    return;
  }
  // The app picks the Idempotency-Key, so it knows what to look for in the queue.
  const json = JSON.stringify(tx);
  const key = unsaved?.json === json ? unsaved.key : newIdempotencyKey();
  unsaved = null;
  const before = outbox.witnessProblem();
  // The basket is cleared only once the sale is stored: visibly in the queue (the
  // outbox stores it before it sends anything), or when submit answered.
  let cleared = false;
  const clear = () => {
    if (cleared) return;
    cleared = true;
    basket.length = 0;
    basketLocked = false;
    renderBasket();
  };
  const watch = window.setInterval(() => {
    if (!cleared && isQueued(key)) {
      clear();
      setState(status, "queued", `Sale of ${money(tx.total)} saved in the queue (key ${short(key, 13)}): sending…`);
      renderQueue();
    }
  }, 50);
  paying = true;
  basketLocked = true;
  renderBasket();
  setState(status, "queued", `Sale of ${money(tx.total)}: saving it in the queue…`);
  try {
    const r = await outbox.submit(client, tx, key, unixTimeMs());
    clear();
    const problem = newProblem(before, r.kind === "sent" ? [r.stored.receipt] : []);
    if (r.kind === "sent") {
      setState(status, problem ? "bad" : "ok", problem
        ? `Sent 1 sale of ${money(tx.total)}; the server stored it (seq ${r.stored.sequence}), but its receipt does NOT fit this register's history: ${problem.code}.`
        : `Sent 1 sale of ${money(tx.total)}; the server stored it (seq ${r.stored.sequence}).`);
      void verifyReceipts();
    } else if (r.kind === "refused") {
      // Stored, then refused by the server for good: kept in the queue as failed.
      setState(status, "bad", `The server refused the sale of ${money(tx.total)}: ${r.error.code}: ${r.error.message} (kept in the queue, marked failed).`);
    } else if (!isQueued(r.idempotencyKey)) {
      // A sync that was already running sent it along with the earlier sales.
      setState(status, problem ? "bad" : "ok", `Sent 1 sale of ${money(tx.total)}; the server stored it` +
        `${problem ? `, but a receipt does NOT fit this register's history: ${problem.code}` : ""}.`);
      void verifyReceipts();
    } else {
      setState(status, "queued", `Kept in the queue (key ${short(r.idempotencyKey, 13)}): ${queueErrorText()}.`);
    }
  } catch (e) {
    if (isQueued(key)) {
      // Stored, then something failed after (a refusal is answered as "refused"; this
      // is the safety net): the sale is in the queue.
      clear();
      setState(status, "bad", `The sale of ${money(tx.total)} is kept in the queue, but: ${errText(e)}.`);
    } else {
      // Nothing was stored (storage full or blocked, ...): the sale exists only in the
      // basket, which stays as it was.
      unsaved = { key, json };
      basketLocked = false;
      setState(status, "unsaved", `NOT SAVED: the sale of ${money(tx.total)} could not be stored in this browser (${briefErrText(e)}). ` +
        "The basket is kept: free some storage and press Pay again.");
    }
  } finally {
    window.clearInterval(watch);
    paying = false;
    renderBasket();
    renderAlarm();
    renderQueue();
  }
}

/** Why the queue still holds sales, and when it tries again. The queue's own last
 * error, or, after a reload (the queue keeps no last error across one), the oldest
 * pending sale's. The client could not reach the server (when back online); the
 * server refused this register's credentials (401, 403: kept until it accepts the
 * register again: renew, or ask the admin); anything else stops the queue until its
 * next try (429, a 5xx such as 503 `schema_newer` during an upgrade, a 404 from a
 * proxy during a deploy, ...), which waits at least the server's Retry-After (up to
 * the queue's longest wait, 5 minutes). */
function queueErrorText(): string {
  const oldest = outbox.entries().find((q) => q.state === "pending");
  const e = outbox.lastError() ?? oldest?.lastError ?? undefined;
  const next = outbox.nextAttemptAt();
  const secs = next === undefined ? 0 : Math.ceil((next - unixTimeMs()) / 1000);
  const nextTry = secs > 0 ? `; next try in ${secs} s` : "";
  if (!e) return `waiting for its turn${nextTry}`;
  const status = e.httpStatus ?? undefined;
  if (status === undefined) {
    return e.code === "network" || e.code === "timeout"
      ? `${e.code}: ${e.message}. Retrying when back online`
      : `${e.code}: ${e.message}${nextTry}`;
  }
  if (status === 401 || status === 403) {
    return `${e.code}: ${e.message}. Kept until the server accepts this register again`;
  }
  return `the server cannot answer now (HTTP ${status}, ${e.code})${nextTry}`;
}

/** Sends what the queue holds: when due (timer), or at once (`force`, back online).
 * Runs even when this tab's queue is empty: a sync first takes in the sales other tabs
 * queued (and sends nothing when nothing is pending). The report, or `null` without a
 * client. */
async function syncQueue(force = false): Promise<SyncReport | null> {
  const client = api();
  if (!client) { renderQueue(); renderAlarm(); return null; }
  const r = force ? await outbox.syncNow(client, unixTimeMs()) : await outbox.sync(client, unixTimeMs());
  renderAlarm();
  if (r.alreadyRunning) return r;
  const status = $("sale-status");
  if (r.sent.length) {
    const p = r.witnessProblem;
    setState(status, p ? "bad" : "ok", `Sent ${r.sent.length} sale${r.sent.length === 1 ? "" : "s"} from the queue; the server stored ${r.sent.length === 1 ? "it" : "them"}` +
      `${p ? `, but a receipt does NOT fit this register's history: ${p.code}` : ""}.`);
    void verifyReceipts();
  } else if (r.stoppedBy) {
    setState(status, "queued", `Kept in the queue: ${queueErrorText()}.`);
  }
  if (r.failed.length) {
    setState(status, "bad", `${r.failed.length} sale${r.failed.length === 1 ? " was" : "s were"} refused by the server (kept in the queue, marked failed).`);
  }
  renderQueue();
  return r;
}

function renderQueue(): void {
  const entries = outbox.entries();
  const corrupt = outbox.corruptRecords();
  const pending = outbox.length;
  const failed = entries.length - pending;
  const count = $("queue-count");
  setState(count, entries.length ? "waiting" : "empty", String(entries.length));
  count.setAttribute("aria-label", `${entries.length} queued`);
  $("queue-status").textContent = entries.length === 0 && corrupt.length === 0
    ? "Empty: every sale has been stored by the server."
    : [entries.length ? `${pending} sale${pending === 1 ? "" : "s"} waiting${isOffline() ? " (offline)" : ""}` +
      `${failed ? `, ${failed} refused by the server` : ""}` : "",
    corrupt.length ? `${plural(corrupt.length, "record")} in storage cannot be read (listed below; ` +
      "a sale may be in one: look before you remove it)" : ""].filter(Boolean).join("; ") + ".";
  const list = $("corrupt-list");
  // Rebuilt only when the records change (the timer renders every second): an opened
  // stored value stays open while it is read.
  const shownAs = JSON.stringify(corrupt.map((c) => [c.name, c.reason]));
  if (list.dataset.shown !== shownAs) {
    list.dataset.shown = shownAs;
    list.replaceChildren(...corrupt.map(corruptItem));
  }
  list.hidden = corrupt.length === 0;
  const table = $<HTMLTableElement>("queue-table");
  table.tBodies[0].replaceChildren(...entries.map((e) => {
    const err = e.lastError ? `${e.lastError.code}: ${e.lastError.message}` : "";
    return el("tr", {},
      el("td", {}, el("span", { className: "mono", textContent: short(e.idempotencyKey, 12) })),
      el("td", { className: "num", textContent: money(e.transaction.total) }),
      el("td", { className: "num", textContent: String(e.attempts) }),
      el("td", { textContent: e.state === "failed" ? `failed: ${err}` : err }));
  }));
  table.hidden = entries.length === 0;
}

/** The name of the witness record among the queue's (the register's fork evidence). */
const WITNESS_KEY = `${K.queue}witness`;
/** What an unreadable record may hold, for the question before it is removed. */
function mayHold(name: string): string {
  return name === WITNESS_KEY ? "the evidence of a forked history" : "an unsent sale";
}
/** Shown at most, of a stored value (the copy button copies all of it). */
const RAW_SHOWN = 2000;

/** One unreadable record: its name, why, the stored value as it is (to look at and
 * copy before anything goes), and Remove, which asks first. */
function corruptItem(c: CorruptRecord): HTMLElement {
  const raw = localStorage.getItem(c.name);
  const shown = raw === null ? "(nothing stored under this name now)"
    : raw.length > RAW_SHOWN ? `${raw.slice(0, RAW_SHOWN)}… (${raw.length} characters in all)` : raw;
  const copy = el("button", { type: "button", className: "quiet", textContent: "Copy" });
  copy.setAttribute("aria-label", `Copy the stored value of ${c.name}`);
  copy.addEventListener("click", () => {
    void navigator.clipboard?.writeText(raw ?? "").catch(() => undefined);
  });
  const details = el("details", {}, el("summary", { textContent: "Stored value" }),
    el("pre", { className: "mono raw", textContent: shown }), copy);
  const remove = el("button", { type: "button", className: "quiet", textContent: "Remove" });
  remove.setAttribute("aria-label", `Remove unreadable record ${c.name}`);
  remove.addEventListener("click", () => void removeCorrupt(c.name));
  return el("li", {}, el("span", { className: "mono", textContent: c.name }),
    ` (may hold ${mayHold(c.name)}): ${c.reason} `, remove, details);
}

async function removeCorrupt(name: string): Promise<void> {
  if (!window.confirm(`Remove the unreadable record ${name} for good? It may hold ${mayHold(name)}, ` +
    "which is then lost. Keep a copy of its stored value first.")) {
    setState($("sale-status"), "none", `Kept the unreadable record ${name}.`);
    return;
  }
  try {
    await outbox.removeCorrupt(name);
    setState($("sale-status"), "ok", `Removed the unreadable record ${name}.`);
  } catch (e) {
    setState($("sale-status"), "bad", `Could not remove ${name}: ${errText(e)}`);
  }
  renderQueue();
  renderAlarm();
}

// ---- 6. receipts --------------------------------------------------------------------

/** The receipt the server gave that did not fit this register's witness, if any. The
 * outbox keeps the witness (the newest receipt it accepted, moved by every sale it
 * sends; core decides with `advancesWitness`) and the first receipt that did not fit,
 * as evidence until "forget". */
function witnessProblemText(): string | null {
  const p = outbox.witnessProblem();
  if (!p) return null;
  return `${p.code === "witness_mismatch" ? "History FORKED" : "Receipt REFUSED"}: ${p.code}: ${p.message}`;
}

/** The alarm at the top of the page: the outbox's witness problem, kept in storage, so
 * shown from the start, online or not, whatever else the page says. Refreshed at start
 * and after every sale, sync and check. */
function renderAlarm(): void {
  const box = $("history-alarm");
  // An unreadable witness record may hold the evidence of a fork: the alarm says so.
  if (outbox?.corruptRecords().some((c) => c.name === WITNESS_KEY)) {
    box.hidden = false;
    $("history-alarm-text").textContent = "The register's history evidence cannot be read: its stored " +
      `witness record (${WITNESS_KEY}) is unreadable and may hold the evidence of a forked history. ` +
      "Keep a copy of it (in the queue below) before anything is removed.";
    return;
  }
  const p = outbox?.witnessProblem();
  const text = witnessProblemText();
  if (!p || !text) {
    box.hidden = true;
    $("history-alarm-text").textContent = "";
    return;
  }
  box.hidden = false;
  $("history-alarm-text").textContent = `${text} (seen ${new Date(p.atMs).toISOString().replace(/\.\d+Z$/, "Z")}; ` +
    "the receipt is kept as evidence until this register is forgotten).";
}

async function verifyReceipts(): Promise<void> {
  try {
    await checkReceipts();
  } finally {
    renderAlarm();
  }
}

async function checkReceipts(): Promise<void> {
  const client = api();
  if (!client || !trusted) return;
  const badge = $("chain-badge");
  try {
    // Every stored transaction of this register (the client follows the pages), each
    // checked against its receipt, and the chain checked against the newest receipt
    // this register has seen: a history cut back or rewritten since fails.
    // The outbox checks with its witness, then moves it to the checked chain's end.
    const witness = outbox.witness();
    const { transactions: stored, receipts: claims } = await outbox.verifyHistory(client);
    if (stored.length === 0) { setState(badge, "none", "No receipts yet"); return; }
    const at = stored.findIndex((t) => t.receipt === witness);
    const held = at < 0 ? "" : ` · holds receipt ${claims[at].seq} as this register saw it`;
    const problem = witnessProblemText();
    if (problem) setState(badge, "invalid", `✗ ${problem} (the chain itself verifies)`);
    else setState(badge, "valid", `✓ Chain verified: ${claims.length} receipt${claims.length === 1 ? "" : "s"}, seq 1–${claims[claims.length - 1].seq}${held}`);
    const table = $<HTMLTableElement>("receipt-table");
    table.tBodies[0].replaceChildren(...claims.map((c) => el("tr", {},
      el("td", { className: "num", textContent: String(c.seq) }),
      el("td", { textContent: c.txType }),
      el("td", { className: "num", textContent: money(c.total) }),
      el("td", {}, el("span", { className: "mono", textContent: c.txid })),
      el("td", {}, el("span", { className: "mono", textContent: c.prev ? short(c.prev, 12) : "— (first)" })))));
    table.hidden = false;
  } catch (e) {
    if (isUnreachable(e)) { setState(badge, "busy", "Offline: receipts are checked when back online"); return; }
    if (isTransient(e)) {
      setState(badge, "busy", `The server cannot answer now (${asTg(e).code}${retryText(e)}): receipts are checked when it does`);
      return;
    }
    const t = asTg(e);
    if (t.code === "witness_mismatch") {
      // A fork the outbox saw when the server answered a sale is the first evidence.
      const problem = witnessProblemText();
      setState(badge, "invalid", problem
        ? `✗ ${problem}; the server's history no longer holds what this register was given (${errText(e)})`
        : `✗ History REWRITTEN: the server no longer holds what this register was given (${errText(e)})`);
      return;
    }
    if (t.code === "storage_error" || t.code === "queue_record_corrupt") {
      setState(badge, "invalid", `✗ Witness not kept: ${errText(e)}`);
      return;
    }
    setState(badge, "invalid", `✗ Chain INVALID${t.index !== undefined ? ` at receipt ${t.index}` : ""}: ${errText(e)}`);
  }
}

// ---- 7. URL-path tokens -------------------------------------------------------------

function buildToken(): void {
  const out = $("ut-built");
  const rm = $<HTMLInputElement>("ut-rm").value;
  const rve = $<HTMLInputElement>("ut-rve").value.trim();
  const tok = $<HTMLInputElement>("ut-token").value;
  const ids = rm.split(",").map((s) => Number(s.trim()));
  const t: UrlToken = {
    prefix: $<HTMLSelectElement>("ut-prefix").value as UrlToken["prefix"], version: null,
    rmSystem: ids, rve: rve || null, params: [], token: tok === "" ? null : tok,
    rest: $<HTMLInputElement>("ut-rest").value,
  };
  try {
    if (rm.trim() === "" || ids.some((n) => !Number.isInteger(n) || n < 0)) throw Object.assign(new Error("RmSystem must be comma-separated decimal ids"), { code: "url_invalid_rm_system" });
    setState(out, "ok", encodeUrlToken(t));
  } catch (e) {
    setState(out, "bad", `✗ ${errText(e)}`);
  }
}

function parseToken(): void {
  const path = $<HTMLInputElement>("ut-path");
  const err = $("ut-parse-error");
  try {
    const t = parseUrlToken(path.value);
    err.replaceChildren();
    path.setAttribute("aria-invalid", "false");
    fillKv($("ut-parsed"), [
      ["Prefix", t.prefix + (t.version !== null ? ` (version ${t.version})` : "")],
      ["RmSystem", t.rmSystem.join(", ")],
      ["RVE", t.rve ?? "—"],
      ["Parameters", t.params.length ? t.params.map((p) => `$${p.id}=${p.value}`).join(" ") : "—"],
      ["Access token", t.token ?? "—"],
      ["Resource", t.rest || "/"],
    ]);
  } catch (e) {
    const t = asTg(e);
    path.setAttribute("aria-invalid", "true");
    $("ut-parsed").replaceChildren();
    const kids: (Node | string)[] = [`✗ ${t.code}: ${t.message}`];
    if (t.position !== undefined) {
      kids.push(el("br"), el("span", { className: "mono", textContent: path.value }), el("br"),
        el("span", { className: "mono caret", textContent: `${" ".repeat(t.position)}^ byte ${t.position}` }));
    }
    err.replaceChildren(...kids);
  }
}

// ---- 8. API keys --------------------------------------------------------------------

function checkApiKey(): void {
  const value = $<HTMLInputElement>("ak-input").value;
  const view = $("ak-view");
  const result = $("ak-result");
  // Find every bad character with core itself: validate, note the reported position,
  // put a harmless character there, validate again.
  const chars = Array.from(value);
  const probe = [...chars];
  const marks = new Map<number, "reserved" | "invalid">();
  let first: TillgateError | null = null;
  for (let i = 0; i <= chars.length; i++) {
    try {
      validateApiKey(probe.join(""));
      break;
    } catch (e) {
      const t = asTg(e);
      first ??= t;
      if ((t.code === "api_key_reserved_char" || t.code === "api_key_invalid_char") && t.position !== undefined && !marks.has(t.position)) {
        marks.set(t.position, t.code === "api_key_reserved_char" ? "reserved" : "invalid");
        probe[t.position] = "A";
      } else {
        break;
      }
    }
  }
  view.replaceChildren(...chars.map((c, i) => {
    const m = marks.get(i);
    if (!m) return c;
    const mark = el("mark", { className: m, textContent: c, title: m === "reserved" ? "reserved by Fieldpine" : "not in the API-key charset" });
    return mark;
  }));
  const input = $<HTMLInputElement>("ak-input");
  if (value === "") { setState(result, "none", ""); input.removeAttribute("aria-invalid"); return; }
  if (!first) {
    setState(result, "ok", `✓ Valid API key (${chars.length} characters)`);
    input.setAttribute("aria-invalid", "false");
  } else {
    const reserved = [...marks.values()].filter((m) => m === "reserved").length;
    const invalid = marks.size - reserved;
    const extra = marks.size ? ` (${reserved} reserved, ${invalid} not allowed, highlighted)` : "";
    setState(result, "bad", `✗ ${first.code}: ${first.message}${extra}`);
    input.setAttribute("aria-invalid", "true");
  }
}

function generateKey(): void {
  const len = Number($<HTMLInputElement>("ak-length").value);
  const alphabet = $<HTMLSelectElement>("ak-alphabet").value as ApiKeyAlphabet;
  try {
    $<HTMLInputElement>("ak-input").value = generateApiKey(len, alphabet);
  } catch (e) {
    $<HTMLInputElement>("ak-input").value = "";
    setState($("ak-result"), "bad", `✗ ${errText(e)}`);
    return;
  }
  checkApiKey();
}

// ---- start --------------------------------------------------------------------------

async function main(): Promise<void> {
  await init();
  $("core-status").textContent = "tillgate-core loaded, with tillgate-client (WebAssembly, in this browser)";

  // The demo's offline switch survives a reload (sessionStorage), like a real outage.
  const toggle = $<HTMLInputElement>("offline-toggle");
  toggle.checked = sessionStorage.getItem(K.offline) === "1";
  offlineMode = toggle.checked;

  // The keys an app would build in; the demo pins the server's on first load.
  try {
    const pinned = localStorage.getItem(K.jwks);
    const jwks = pinned ?? JSON.stringify(await request("/.well-known/jwks.json"));
    trusted = TrustedKeys.fromJwksJson(jwks);
    localStorage.setItem(K.jwks, jwks);
  } catch (e) {
    $("core-status").textContent = `Cannot load the server's keys: ${errText(e)}`;
  }
  connect();
  // The client's offline queue, persisted in localStorage (survives a reload).
  outbox = await Outbox.openLocalStorage(K.queue);
  // A fork seen before (kept with the queue) is shown at once, even offline.
  renderAlarm();
  // Earlier versions of this page kept the register's witness themselves: hand it to
  // the outbox once (it takes it only if it keeps none yet), then drop the old key. A
  // receipt that can never be adopted (not trusted, or of an earlier registration) is
  // dropped too; after any other failure (storage) it stays for the next start.
  const ownWitness = localStorage.getItem(OLD_WITNESS);
  const client = api();
  if (ownWitness !== null && client && reg) {
    let settled = true;
    try {
      await outbox.adoptWitness(client, ownWitness, reg.productionNumber);
    } catch (e) {
      settled = asTg(e).code === "invalid_witness";
      console.warn(`the witness this page kept was not adopted: ${errText(e)}`);
    }
    if (settled) {
      const problem = localStorage.getItem(`${OLD_WITNESS}-problem`);
      if (problem) console.warn(`evidence this page kept before: ${problem}`);
      localStorage.removeItem(OLD_WITNESS);
      localStorage.removeItem(`${OLD_WITNESS}-problem`);
    }
    renderAlarm();
  }

  // 1. form
  const d = defaults();
  for (const f of FIELDS) {
    input(f).value = reg ? String((reg as unknown as Record<string, string>)[f] ?? d[f]) : d[f];
    input(f).addEventListener("input", validateForm);
  }
  $("activation-form").addEventListener("submit", (ev) => void register(ev as SubmitEvent));
  $("forget-btn").addEventListener("click", () => void forget());
  if (!reg) validateForm();
  renderRegistration();

  // 2. handshake, 3. admin, 4. descriptor
  $("handshake-btn").addEventListener("click", () => void handshake());
  $("admin-refresh-btn").addEventListener("click", () => void refreshAdmin());
  $("admin-key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    adminKey = $<HTMLInputElement>("admin-key-input").value.trim() || null;
    $<HTMLButtonElement>("admin-refresh-btn").disabled = !adminKey;
    void refreshAdmin();
  });
  $("descriptor-fetch-btn").addEventListener("click", () => void fetchDescriptor());
  $("descriptor-tamper-btn").addEventListener("click", tamper);
  $("descriptor-restore-btn").addEventListener("click", restoreDescriptor);
  void loadAdminKey();

  // 5. sales
  $("products").replaceChildren(...PRODUCTS.map((p) => {
    const b = el("button", { type: "button" }, el("strong", { textContent: p.name }), money(p.amount));
    b.addEventListener("click", () => {
      const line = basket.find((l) => l.name === p.name);
      if (line) line.quantity += 1; else basket.push({ ...p, quantity: 1 });
      renderBasket();
    });
    return b;
  }));
  $("pay-btn").addEventListener("click", () => void pay());
  $("clear-btn").addEventListener("click", () => { basket.length = 0; renderBasket(); });
  toggle.addEventListener("change", () => {
    offlineMode = toggle.checked;
    sessionStorage.setItem(K.offline, toggle.checked ? "1" : "0");
    renderQueue();
    // Back online: send the queue now instead of waiting for its backoff.
    if (!toggle.checked) void syncQueue(true);
  });
  // The app's timer: the outbox sends when the oldest sale is due (backoff after failures).
  // It runs with an empty queue too, to take in the sales other tabs queued; with
  // nothing pending it sends nothing and leaves the page as it is.
  window.setInterval(() => { if (reg && !paying) void syncQueue(); }, 1000);
  renderBasket();
  renderQueue();
  $("receipts-btn").addEventListener("click", () => void verifyReceipts());
  $<HTMLButtonElement>("receipts-btn").disabled = !reg;

  // 7. URL tokens, 8. API keys: live as you type.
  for (const id of ["ut-prefix", "ut-rm", "ut-rve", "ut-token", "ut-rest"]) $(id).addEventListener("input", buildToken);
  $("ut-path").addEventListener("input", parseToken);
  buildToken();
  parseToken();
  $("ak-input").addEventListener("input", checkApiKey);
  $("ak-generate-btn").addEventListener("click", generateKey);

  // At every start the app checks the descriptor it keeps (protection against a
  // modified local database), then talks to the server.
  if (reg) {
    void showPersistentStorage();
    checkDescriptor();
    await handshake();
    void syncQueue();
    void verifyReceipts();
  }
  document.body.dataset.ready = "true";
}

main().catch((e) => {
  $("core-status").textContent = `The demo failed to start: ${errText(e)}`;
});
