// HTTP to tillgate-server.
//
// STAND-IN: the wasm package does not (yet) export tillgate-client, so the demo speaks
// HTTP with plain fetch here. Every answer that carries a signature is still verified by
// core in the browser (main.ts). When the package gains the client, this file is what it
// replaces.

/** A field error as the server (and core) report it. */
export interface FieldError { field: string; code: string; message: string; }

/** A refusal by the server: its problem+json `code`, `detail` and field list. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly fields: FieldError[] = []) {
    super(message);
  }
}

/** The server could not be reached (or the demo's offline switch is on). */
export class NetworkError extends Error {
  readonly code = "network_unreachable";
}

let offline = false;

/** The demo's "offline" switch: while on, every request fails as a network error would. */
export function setOffline(value: boolean): void { offline = value; }
export function isOffline(): boolean { return offline; }

export interface RequestOptions {
  method?: string;
  body?: unknown;
  apiKey?: string;
  adminKey?: string;
  headers?: Record<string, string>;
  /** The demo admin panel is the back office, not the register: the switch spares it. */
  backOffice?: boolean;
}

/** One request; JSON in, JSON out; problem+json becomes an ApiError. */
export async function request<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  if (offline && !opts.backOffice) throw new NetworkError("offline: the server cannot be reached");
  const headers: Record<string, string> = { accept: "application/json", ...(opts.headers ?? {}) };
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  const bearer = opts.adminKey ?? opts.apiKey;
  if (bearer) headers["authorization"] = `Bearer ${bearer}`;
  let resp: Response;
  try {
    resp = await fetch(new URL(path, location.origin), {
      method: opts.method ?? "GET",
      headers,
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
      cache: "no-store",
    });
  } catch (e) {
    throw new NetworkError(`the server cannot be reached: ${(e as Error).message}`);
  }
  const text = await resp.text();
  let json: unknown = undefined;
  try { json = text ? JSON.parse(text) : undefined; } catch { /* not JSON */ }
  if (!resp.ok) {
    const p = (json ?? {}) as { code?: string; detail?: string; title?: string; fields?: FieldError[] };
    throw new ApiError(resp.status, p.code ?? `http_${resp.status}`, p.detail ?? p.title ?? resp.statusText, p.fields ?? []);
  }
  return json as T;
}

// ---- the server's answers (camelCase JSON) -------------------------------------------

export interface ActivationCreated {
  activationId: string; productionNumber: string; apiKey: string; status: string;
  validFrom: string; validTo: string; corporateId: string;
}
export interface HandshakeOk {
  status: string; activationId: string; productionNumber: string; validFrom: string;
  validTo: string; serverTime: string; signedTime: string;
}
export interface ActivationCodeOk { descriptor: string; kid: string; }
export interface AdminActivation {
  activationId: string; productionNumber: string; status: string; cashRegisterName: string;
  deviceId: string; corporateId: string; country: string; applicationPackage: string;
  validFrom: string; validTo: string; createdAt: string;
}
export interface StoredTransaction {
  id: string; sequence: number; createdAt: string; productionNumber: string;
  txh: string; receipt: string; total: number; currency: string; type: string;
}
export interface TransactionPage { rve: string; items: StoredTransaction[]; nextAfterSequence?: number; }
