// The demo's back office over plain fetch: the admin API (list, approve, reject) and the
// server's public keys (/.well-known/jwks.json, which a real app builds in). Neither is
// part of tillgate-client: a cash register never calls the admin API. Everything the
// register itself does goes through the client (main.ts).

/** A refusal by the server: HTTP status, its problem+json `code` and `detail`. */
export class HttpError extends Error {
  constructor(readonly status: number, readonly code: string, message: string) {
    super(message);
  }
}

export interface RequestOptions {
  method?: string;
  body?: unknown;
  adminKey?: string;
}

/** One request to the demo's own server; JSON in, JSON out; problem+json becomes an HttpError. */
export async function request<T>(path: string, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (opts.body !== undefined) headers["content-type"] = "application/json";
  if (opts.adminKey) headers["authorization"] = `Bearer ${opts.adminKey}`;
  const resp = await fetch(new URL(path, location.origin), {
    method: opts.method ?? "GET",
    headers,
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    cache: "no-store",
  });
  const text = await resp.text();
  let json: unknown = undefined;
  try { json = text ? JSON.parse(text) : undefined; } catch { /* not JSON */ }
  if (!resp.ok) {
    const p = (json ?? {}) as { code?: string; detail?: string; title?: string };
    throw new HttpError(resp.status, p.code ?? `http_${resp.status}`, p.detail ?? p.title ?? resp.statusText);
  }
  return json as T;
}

/** A registration as the admin API lists it. */
export interface AdminActivation {
  activationId: string; productionNumber: string; status: string; cashRegisterName: string;
  deviceId: string; corporateId: string; country: string; applicationPackage: string;
  validFrom: string; validTo: string; createdAt: string;
}
