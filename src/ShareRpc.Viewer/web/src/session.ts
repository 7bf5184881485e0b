// The agent-session profile (docs/agent-session.md) read from the page's documents: the same
// mapping and tolerance as AgentSessionReader (src/ShareRpc.AgentSession). A record that cannot be
// used (another content type, bytes that do not parse, a bad key) is left out and counted, so one
// bad record does not blank the view.

import { fromBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { FileDiffSchema, MessageSchema, ModelListSchema, PartSchema, SessionSchema } from "../gen/sharerpc/agent/v1/session_pb.js";
import type { FileDiff, Message, ModelList, Part, Session } from "../gen/sharerpc/agent/v1/session_pb.js";
import { MAX_SKIPPED_KEPT } from "./limits.js";
import type { Doc, ShareState } from "./state.js";

export interface PartEntry {
  readonly key: string;
  readonly cursor: bigint;
  readonly part: Part;
}

export interface DiffEntry {
  readonly key: string;
  readonly cursor: bigint;
  readonly diff: FileDiff;
}

export interface Skipped {
  readonly collection: string;
  readonly key: string;
  readonly reason: string;
}

export interface Conversation {
  readonly session: Session | null;
  readonly models: ModelList | null;
  /** Ordered by created_at, then id. */
  readonly messages: readonly { readonly message: Message; readonly cursor: bigint }[];
  /** By message id, each ordered by key (= part id order). */
  readonly parts: ReadonlyMap<string, readonly PartEntry[]>;
  /** In commit order. */
  readonly diffs: readonly DiffEntry[];
  readonly skippedCount: number;
  readonly skipped: readonly Skipped[];
}

const PROFILE_COLLECTIONS = ["session", "messages", "parts", "diffs", "models"];
const contentTypeOf = (schema: DescMessage) => `application/x-protobuf; type=${schema.typeName}`;

/** True when the share carries the profile's records (any document with a profile content type). */
export function isAgentSession(state: ShareState): boolean {
  for (const collection of PROFILE_COLLECTIONS.slice(0, 3)) {
    for (const doc of state.collections.get(collection)?.values() ?? []) {
      if (doc.contentType.trim().toLowerCase().startsWith("application/x-protobuf; type=sharerpc.agent.v1.")) return true;
    }
  }
  return false;
}

/** Decoded records, per document object (documents are replaced, never changed, on a write). */
const decoded = new WeakMap<Doc, { value: unknown } | { error: string }>();

function decode<S extends DescMessage>(schema: S, doc: Doc, skipped: Skipped[], count: { n: number }): MessageShape<S> | null {
  let hit = decoded.get(doc);
  if (!hit) {
    const expected = contentTypeOf(schema);
    const ct = doc.contentType.trim();
    if (ct.length > 0 && ct.toLowerCase() !== expected.toLowerCase()) {
      hit = { error: `content type '${ct}', expected '${expected}'` };
    } else {
      try {
        hit = { value: fromBinary(schema, doc.value) };
      } catch (e) {
        hit = { error: `not a valid ${schema.name}: ${e instanceof Error ? e.message : String(e)}` };
      }
    }
    decoded.set(doc, hit);
  }
  if ("error" in hit) {
    count.n++;
    if (skipped.length < MAX_SKIPPED_KEPT) skipped.push({ collection: doc.collection, key: doc.key, reason: hit.error });
    return null;
  }
  return hit.value as MessageShape<S>;
}

function compareMessages(a: { message: Message }, b: { message: Message }): number {
  const ta = a.message.createdAt;
  const tb = b.message.createdAt;
  const sa = ta?.seconds ?? -(2n ** 62n);
  const sb = tb?.seconds ?? -(2n ** 62n);
  if (sa !== sb) return sa < sb ? -1 : 1;
  const na = ta?.nanos ?? 0;
  const nb = tb?.nanos ?? 0;
  if (na !== nb) return na - nb;
  return a.message.id < b.message.id ? -1 : a.message.id > b.message.id ? 1 : 0;
}

let cache: { revision: number; state: ShareState; conversation: Conversation } | null = null;

/** The conversation at the state's cursor (recomputed only when the state changed). */
export function conversationOf(state: ShareState): Conversation {
  if (cache && cache.state === state && cache.revision === state.revision) return cache.conversation;
  const skipped: Skipped[] = [];
  const count = { n: 0 };
  const docs = (c: string) => state.collections.get(c);

  const sessionDoc = docs("session")?.get("info");
  const session = sessionDoc ? decode(SessionSchema, sessionDoc, skipped, count) : null;
  const modelsDoc = docs("models")?.get("list");
  const models = modelsDoc ? decode(ModelListSchema, modelsDoc, skipped, count) : null;
  for (const c of ["session", "models"]) {
    for (const doc of docs(c)?.values() ?? []) {
      if (doc.key !== (c === "session" ? "info" : "list")) {
        count.n++;
        if (skipped.length < MAX_SKIPPED_KEPT) skipped.push({ collection: c, key: doc.key, reason: `the profile uses only key '${c === "session" ? "info" : "list"}' here` });
      }
    }
  }

  const messages: { message: Message; cursor: bigint }[] = [];
  for (const doc of docs("messages")?.values() ?? []) {
    const m = decode(MessageSchema, doc, skipped, count);
    if (m) messages.push({ message: m, cursor: doc.cursor });
  }
  messages.sort(compareMessages);

  const parts = new Map<string, PartEntry[]>();
  for (const key of state.sortedKeys("parts")) {
    const doc = docs("parts")!.get(key)!;
    const slash = key.indexOf("/");
    if (slash <= 0 || slash === key.length - 1) {
      count.n++;
      if (skipped.length < MAX_SKIPPED_KEPT) skipped.push({ collection: "parts", key, reason: "a part key is {messageId}/{partId}" });
      continue;
    }
    const part = decode(PartSchema, doc, skipped, count);
    if (!part) continue;
    const messageId = key.slice(0, slash);
    let list = parts.get(messageId);
    if (!list) parts.set(messageId, (list = []));
    list.push({ key, cursor: doc.cursor, part });
  }

  const diffs: DiffEntry[] = [];
  for (const doc of docs("diffs")?.values() ?? []) {
    const diff = decode(FileDiffSchema, doc, skipped, count);
    // Appended diffs are keyed by their cursor; a diff put under another key sorts by where it was written.
    if (diff) diffs.push({ key: doc.key, cursor: /^\d+$/.test(doc.key) ? BigInt(doc.key) : doc.cursor, diff });
  }
  diffs.sort((a, b) => (a.cursor < b.cursor ? -1 : a.cursor > b.cursor ? 1 : 0));

  const conversation: Conversation = { session, models, messages, parts, diffs, skippedCount: count.n, skipped };
  cache = { revision: state.revision, state, conversation };
  return conversation;
}
