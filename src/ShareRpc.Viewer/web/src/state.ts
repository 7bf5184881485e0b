// The share as the page holds it: the documents at `cursor` (every op up to it, none after), the
// newest ops for the tail, and counters that show the stream was applied without a gap or a repeat.
// Bounded in documents and bytes (limits.ts): past a limit the least recently written documents
// are dropped and counted, so a huge share degrades visibly instead of exhausting the tab.

import type { CommittedOp, Document, Snapshot } from "../gen/sharerpc/v1/share_rpc_pb.js";
import { MAX_DOCUMENT_BYTES, MAX_DOCUMENTS, MAX_SNAPSHOT_DOCUMENTS, MAX_TAIL_OPS } from "./limits.js";

export interface Doc {
  readonly collection: string;
  readonly key: string;
  readonly value: Uint8Array;
  readonly contentType: string;
  /** The cursor of the op that wrote it last (versions are not shown: a deleted document's count lives only on the server). */
  readonly cursor: bigint;
}

export interface TailEntry {
  readonly cursor: bigint;
  readonly kind: "put" | "delete" | "append" | "none";
  readonly collection: string;
  readonly key: string;
  readonly bytes: number;
  readonly contentType: string;
  readonly producerId: string;
  readonly seq: bigint;
  readonly committedAt: Date | null;
}

export type ApplyResult = "applied" | "duplicate" | "gap";

const docId = (collection: string, key: string) => `${collection}\u0000${key}`;

function tailEntry(op: CommittedOp): TailEntry {
  const kind = op.op?.kind;
  const at = op.committedAt ? new Date(Number(op.committedAt.seconds) * 1000 + op.committedAt.nanos / 1e6) : null;
  const common = { cursor: op.cursor, producerId: op.producerId, seq: op.op?.seq ?? 0n, committedAt: at };
  switch (kind?.case) {
    case "put":
      return { ...common, kind: "put", collection: kind.value.collection, key: kind.value.key, bytes: kind.value.value.length, contentType: kind.value.contentType };
    case "append":
      return { ...common, kind: "append", collection: kind.value.collection, key: op.cursor.toString(), bytes: kind.value.value.length, contentType: kind.value.contentType };
    case "delete":
      return { ...common, kind: "delete", collection: kind.value.collection, key: kind.value.key, bytes: 0, contentType: "" };
    default:
      return { ...common, kind: "none", collection: "", key: "", bytes: 0, contentType: "" };
  }
}

export class ShareState {
  /** Every op up to here is applied, none after. */
  cursor = 0n;
  /** The share's head as last heard (redeem, snapshot, heartbeat). */
  head = 0n;
  /** True once a snapshot (possibly empty) is applied: later streams resume from cursor + 1. */
  loaded = false;
  snapshotCursor: bigint | null = null;
  applied = 0;
  duplicatesSkipped = 0;
  gaps = 0;
  /** Documents dropped to stay within MAX_DOCUMENTS / MAX_DOCUMENT_BYTES. */
  evicted = 0;
  /** Bumped on every change: views compare it to skip work. */
  revision = 0;
  /** Bumped when a document is added or removed (not on update): sorted key lists are cached on it. */
  shape = 0;

  /** By collection, then key. */
  readonly collections = new Map<string, Map<string, Doc>>();
  /** Every document, least recently written first (a Map keeps insertion order; a write re-inserts). */
  private readonly order = new Map<string, Doc>();
  private bytes = 0;
  private readonly tail: TailEntry[] = [];
  private pending: Map<string, Document> | null = null;
  private pendingCursor = -1n;
  private pendingBytes = 0;

  get documentCount(): number {
    return this.order.size;
  }

  get documentBytes(): number {
    return this.bytes;
  }

  /** The kept ops, newest first. */
  tailNewestFirst(): readonly TailEntry[] {
    return [...this.tail].reverse();
  }

  /**
   * A snapshot arrives in chunks (in collection, key order); applied when the last one arrives (a
   * cut-off one restarts with the next stream). What is gathered is bounded too: past twice the
   * limits, the least recently written documents are dropped, so the newest survive whatever the
   * snapshot's order.
   */
  addSnapshotChunk(chunk: Snapshot): boolean {
    if (this.pending === null || this.pendingCursor !== chunk.cursor) {
      this.pending = new Map();
      this.pendingCursor = chunk.cursor;
      this.pendingBytes = 0;
    }
    for (const d of chunk.documents) {
      this.pending.set(docId(d.collection, d.key), d);
      this.pendingBytes += d.value.length;
    }
    if (this.pending.size > 2 * MAX_SNAPSHOT_DOCUMENTS || this.pendingBytes > 2 * MAX_DOCUMENT_BYTES) this.trimPending();
    if (!chunk.lastChunk) return false;
    const docs = [...this.pending.values()].sort((a, b) => (a.cursor < b.cursor ? -1 : a.cursor > b.cursor ? 1 : 0));
    this.pending = null;
    this.collections.clear();
    this.order.clear();
    this.bytes = 0;
    for (const d of docs) this.set(d.collection, d.key, d.value, d.contentType, d.cursor); // set() drops the oldest past the limits
    this.cursor = chunk.cursor;
    this.snapshotCursor = chunk.cursor;
    this.head = this.head > chunk.cursor ? this.head : chunk.cursor;
    this.loaded = true;
    this.changed(true);
    return true;
  }

  /** Keeps the newest documents of the gathered snapshot within the limits. */
  private trimPending(): void {
    const newestFirst = [...this.pending!.values()].sort((a, b) => (a.cursor > b.cursor ? -1 : a.cursor < b.cursor ? 1 : 0));
    this.pending = new Map();
    this.pendingBytes = 0;
    for (const d of newestFirst) {
      if (this.pending.size >= MAX_SNAPSHOT_DOCUMENTS || this.pendingBytes + d.value.length > MAX_DOCUMENT_BYTES) {
        this.evicted++;
        continue;
      }
      this.pending.set(docId(d.collection, d.key), d);
      this.pendingBytes += d.value.length;
    }
  }

  /** Drops a partly received snapshot (the stream broke before its last chunk). */
  dropPartialSnapshot(): void {
    this.pending = null;
  }

  apply(op: CommittedOp): ApplyResult {
    if (op.cursor <= this.cursor) {
      this.duplicatesSkipped++;
      return "duplicate";
    }
    if (op.cursor !== this.cursor + 1n) {
      this.gaps++;
      return "gap";
    }
    const kind = op.op?.kind;
    if (kind?.case === "put") {
      this.set(kind.value.collection, kind.value.key, kind.value.value, kind.value.contentType, op.cursor);
    } else if (kind?.case === "append") {
      this.set(kind.value.collection, op.cursor.toString(), kind.value.value, kind.value.contentType, op.cursor);
    } else if (kind?.case === "delete") {
      this.remove(kind.value.collection, kind.value.key);
    }
    this.tail.push(tailEntry(op));
    if (this.tail.length > MAX_TAIL_OPS) this.tail.splice(0, this.tail.length - MAX_TAIL_OPS);
    this.cursor = op.cursor;
    this.head = this.head > op.cursor ? this.head : op.cursor;
    this.applied++;
    this.loaded = true;
    this.changed(false);
    return "applied";
  }

  /**
   * Ops from before the snapshot, read by a separate short stream, so the tail shows recent history
   * at once: only those older than every op the tail holds, and not after the snapshot.
   */
  backfillTail(ops: readonly CommittedOp[]): void {
    const oldest = this.tail[0]?.cursor ?? (this.snapshotCursor ?? 0n) + 1n;
    const older = ops.filter((op) => op.cursor < oldest && op.cursor <= (this.snapshotCursor ?? 0n)).map(tailEntry);
    if (older.length === 0) return;
    this.tail.unshift(...older);
    if (this.tail.length > MAX_TAIL_OPS) this.tail.splice(0, this.tail.length - MAX_TAIL_OPS);
    this.changed(false);
  }

  heardHead(cursor: bigint): void {
    if (cursor > this.head) {
      this.head = cursor;
      this.changed(false);
    }
  }

  sortedKeys = (() => {
    const cache = new Map<string, { shape: number; keys: string[] }>();
    return (collection: string): string[] => {
      const hit = cache.get(collection);
      if (hit && hit.shape === this.shape) return hit.keys;
      const keys = [...(this.collections.get(collection)?.keys() ?? [])].sort();
      cache.set(collection, { shape: this.shape, keys });
      return keys;
    };
  })();

  private set(collection: string, key: string, value: Uint8Array, contentType: string, cursor: bigint): void {
    const id = docId(collection, key);
    const old = this.order.get(id);
    if (old) {
      this.bytes -= old.value.length;
      this.order.delete(id);
    }
    const doc: Doc = { collection, key, value, contentType, cursor };
    this.order.set(id, doc);
    this.bytes += value.length;
    let docs = this.collections.get(collection);
    if (!docs) this.collections.set(collection, (docs = new Map()));
    docs.set(key, doc);
    if (!old) this.shape++;
    this.evictOverLimits();
  }

  private remove(collection: string, key: string): void {
    const id = docId(collection, key);
    const old = this.order.get(id);
    if (!old) return;
    this.order.delete(id);
    this.bytes -= old.value.length;
    const docs = this.collections.get(collection)!;
    docs.delete(key);
    if (docs.size === 0) this.collections.delete(collection);
    this.shape++;
  }

  private evictOverLimits(): void {
    while (this.order.size > MAX_DOCUMENTS || this.bytes > MAX_DOCUMENT_BYTES) {
      const oldest = this.order.values().next().value as Doc;
      this.remove(oldest.collection, oldest.key);
      this.evicted++;
    }
  }

  private changed(structural: boolean): void {
    this.revision++;
    if (structural) this.shape++;
  }
}
