// The offline queue ("outbox") for sales.
//
// STAND-IN for tillgate-client's Outbox with its LocalStorageStore, which the wasm
// package does not export yet. It follows the same rules, in small: a sale is written
// to localStorage before its first send, keeps one Idempotency-Key for every retry,
// leaves the queue only when the server has stored it (201), stops at the first network
// failure and retries with backoff; a sale the server refuses (4xx) stays, marked failed.

import { ApiError, NetworkError, StoredTransaction, request } from "./api.js";
import type { Transaction } from "tillgate/web";

export interface Entry {
  key: string;
  tx: Transaction;
  createdAt: number;
  attempts: number;
  lastError?: string;
  failed?: boolean;
}

export interface SyncResult { sent: StoredTransaction[]; stoppedBy?: string; }

const BACKOFF_MS = [1000, 2000, 5000, 10000, 30000];

function randomKey(): string {
  const b = new Uint8Array(16);
  crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export class Outbox {
  private entries: Entry[];
  private syncing: Promise<SyncResult> | null = null;
  private failures = 0;
  nextAttemptAt = 0;

  constructor(private readonly storageKey: string) {
    this.entries = JSON.parse(localStorage.getItem(storageKey) ?? "[]") as Entry[];
  }

  private save(): void {
    localStorage.setItem(this.storageKey, JSON.stringify(this.entries));
  }

  list(): readonly Entry[] { return this.entries; }
  get length(): number { return this.entries.length; }

  /** Persists the sale with a fresh Idempotency-Key; nothing is sent yet. */
  enqueue(tx: Transaction): Entry {
    const e: Entry = { key: randomKey(), tx, createdAt: Date.now(), attempts: 0 };
    this.entries.push(e);
    this.save();
    return e;
  }

  clear(): void { this.entries = []; this.save(); }

  /** Sends what is queued, oldest first; one sync at a time. */
  sync(apiKey: string): Promise<SyncResult> {
    if (!this.syncing) {
      this.syncing = this.drain(apiKey).finally(() => { this.syncing = null; });
    }
    return this.syncing;
  }

  private async drain(apiKey: string): Promise<SyncResult> {
    const sent: StoredTransaction[] = [];
    for (const e of [...this.entries]) {
      if (e.failed) continue;
      e.attempts += 1;
      try {
        const stored = await request<StoredTransaction>("/transactions", {
          method: "POST", apiKey, body: e.tx, headers: { "idempotency-key": e.key },
        });
        this.entries = this.entries.filter((x) => x.key !== e.key);
        this.failures = 0;
        this.nextAttemptAt = 0;
        this.save();
        sent.push(stored);
      } catch (err) {
        const retryable = err instanceof NetworkError ||
          (err instanceof ApiError && (err.status >= 500 || err.status === 429 || err.status === 401 || err.status === 403));
        e.lastError = err instanceof ApiError ? `${err.code}: ${err.message}` : (err as Error).message;
        if (!retryable) e.failed = true;
        this.save();
        if (retryable) {
          this.failures += 1;
          this.nextAttemptAt = Date.now() + BACKOFF_MS[Math.min(this.failures, BACKOFF_MS.length) - 1];
          return { sent, stoppedBy: e.lastError };
        }
      }
    }
    return { sent };
  }
}
