// Any share as its collections → documents, and the op tail with cursors (newest first). One page
// of each is in the DOM. Values are shown as text when they are UTF-8, as JSON when they are one of
// the agent-session records, else as the first bytes in hex.

import { fromBinary, toJsonString, type DescMessage } from "@bufbuild/protobuf";
import { FileDiffSchema, MessageSchema, ModelListSchema, PartSchema, SessionSchema } from "../gen/sharerpc/agent/v1/session_pb.js";
import { clip, formatBytes, h, preview, shortId } from "./dom.js";
import { DOCUMENTS_PER_PAGE, MAX_PREVIEW_CHARS, MAX_RENDERED_TEXT_CHARS, MAX_TAIL_OPS, TAIL_OPS_PER_PAGE } from "./limits.js";
import { pager, Paging } from "./pager.js";
import type { Doc, ShareState, TailEntry } from "./state.js";

const PROFILE_TYPES = new Map<string, DescMessage>(
  [SessionSchema, MessageSchema, PartSchema, FileDiffSchema, ModelListSchema].map((s) => [`application/x-protobuf; type=${s.typeName}`.toLowerCase(), s]),
);
const utf8 = new TextDecoder("utf-8", { fatal: true });

/** The value as text: a known record as JSON, UTF-8 as is, else hex of the first 32 bytes. */
export function valueText(doc: Pick<Doc, "value" | "contentType">): string {
  const schema = PROFILE_TYPES.get(doc.contentType.trim().toLowerCase());
  if (schema) {
    try {
      return toJsonString(schema, fromBinary(schema, doc.value), { prettySpaces: 2 });
    } catch {
      // not what it says it is: shown as bytes below
    }
  }
  try {
    return utf8.decode(doc.value);
  } catch {
    const hex = [...doc.value.slice(0, 32)].map((b) => b.toString(16).padStart(2, "0")).join(" ");
    return `(binary, ${doc.value.length} bytes) ${hex}${doc.value.length > 32 ? " …" : ""}`;
  }
}

export class DocumentsView {
  readonly element = h("section", { class: "documents", data: { view: "documents" } });
  private selected: string | null = null;
  private readonly paging = new Paging(DOCUMENTS_PER_PAGE, false);

  constructor(private readonly rerender: () => void) {}

  render(state: ShareState): void {
    const names = [...state.collections.keys()].sort();
    if (this.selected === null || !state.collections.has(this.selected)) this.selected = names[0] ?? null;
    const list = h(
      "ul",
      { class: "collections" },
      ...names.map((name) =>
        h(
          "li",
          { data: { collection: name } },
          h("button", { class: name === this.selected ? "selected" : "", attrs: { type: "button" }, onclick: () => this.select(name) }, `${name} `, h("span", { class: "count" }, state.collections.get(name)!.size.toLocaleString("en"))),
        ),
      ),
    );
    const keys = this.selected ? state.sortedKeys(this.selected) : [];
    const w = this.paging.window(keys.length, false);
    const docs = state.collections.get(this.selected ?? "");
    const rows = keys.slice(w.first, w.end).map((key) => renderDoc(docs!.get(key)!));
    this.element.replaceChildren(
      h("h2", {}, "Collections"),
      names.length === 0 ? h("p", { class: "empty" }, "The share has no documents yet.") : list,
      h("h2", {}, this.selected ? `Documents in ${this.selected}` : "Documents"),
      pager("documents", this.paging, keys.length, false, this.rerender, "documents"),
      h("table", { class: "docs" }, h("thead", {}, h("tr", {}, ...["key", "cursor", "size", "content type", "value"].map((c) => h("th", {}, c)))), h("tbody", {}, ...rows)),
    );
  }

  private select(name: string): void {
    this.selected = name;
    this.paging.page = 0;
    this.rerender();
  }
}

function renderDoc(doc: Doc): HTMLElement {
  const text = valueText(doc);
  return h(
    "tr",
    { data: { key: doc.key, cursor: doc.cursor.toString() } },
    h("td", { class: "key" }, doc.key),
    h("td", { class: "num" }, doc.cursor.toString()),
    h("td", { class: "num" }, formatBytes(doc.value.length)),
    h("td", { class: "ctype" }, doc.contentType),
    h("td", { class: "value" }, text.length <= MAX_PREVIEW_CHARS ? h("code", {}, text) : h("details", {}, h("summary", {}, preview(text, MAX_PREVIEW_CHARS)), h("pre", {}, clip(text, MAX_RENDERED_TEXT_CHARS)))),
  );
}

export class TailView {
  readonly element = h("section", { class: "tail", data: { view: "tail" } });
  private readonly paging = new Paging(TAIL_OPS_PER_PAGE, false);

  constructor(private readonly rerender: () => void) {}

  render(state: ShareState): void {
    const ops = state.tailNewestFirst();
    const w = this.paging.window(ops.length, false);
    const snapshot = state.snapshotCursor !== null ? ` The snapshot was taken at cursor ${state.snapshotCursor}.` : "";
    this.element.replaceChildren(
      h("h2", {}, "Op tail"),
      h("p", { class: "hint" }, `Newest first, the last ${MAX_TAIL_OPS.toLocaleString("en")} ops at most.${snapshot}`),
      pager("ops", this.paging, ops.length, false, this.rerender, "tail"),
      h("ol", { class: "ops" }, ...ops.slice(w.first, w.end).map(renderOp)),
    );
  }
}

function renderOp(op: TailEntry): HTMLElement {
  const at = op.committedAt ? op.committedAt.toISOString().slice(11, 23) : "";
  return h(
    "li",
    { data: { cursor: op.cursor.toString(), kind: op.kind } },
    h("span", { class: "cursor" }, `#${op.cursor}`),
    h("span", { class: `kind kind-${op.kind}` }, op.kind),
    h("span", { class: "target", attrs: { title: `${op.collection}/${op.key}` } }, `${op.collection}/${op.key}`),
    h("span", { class: "num" }, op.kind === "delete" ? "" : formatBytes(op.bytes)),
    h("span", { class: "meta" }, `producer ${shortId(op.producerId)} · seq ${op.seq} · ${at}`),
  );
}
