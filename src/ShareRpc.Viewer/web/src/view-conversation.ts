// The agent-session profile as a conversation: the session's title and models, its messages in
// order with their parts (text, reasoning, tool calls with their status, files, steps), and the
// file diffs. One page of messages and one of diffs are in the DOM; an article is rebuilt only when
// its message or one of its parts was written again (so open <details> stay open).

import type { Timestamp } from "@bufbuild/protobuf/wkt";
import { ChangeKind, Role, ToolStatus, type Message, type Part } from "../gen/sharerpc/agent/v1/session_pb.js";
import { append, clip, h } from "./dom.js";
import { DIFFS_PER_PAGE, MAX_RENDERED_TEXT_CHARS, MESSAGES_PER_PAGE } from "./limits.js";
import { pager, Paging } from "./pager.js";
import { conversationOf, type Conversation, type DiffEntry, type PartEntry } from "./session.js";
import type { ShareState } from "./state.js";

export function timeText(t: Timestamp | undefined): string {
  if (!t) return "";
  return new Date(Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6)).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

const enumName = (names: Record<number, string>, value: number, prefix: string) =>
  (names[value] ?? String(value)).replace(prefix, "").toLowerCase();

export class ConversationView {
  readonly element = h("section", { class: "conversation", data: { view: "conversation" } });
  private readonly messagePaging = new Paging(MESSAGES_PER_PAGE, true);
  private readonly diffPaging = new Paging(DIFFS_PER_PAGE, true);
  private readonly articles = new Map<string, { sig: string; el: HTMLElement }>();

  constructor(private readonly rerender: () => void) {}

  render(state: ShareState): void {
    const c = conversationOf(state);
    const w = this.messagePaging.window(c.messages.length, true);
    const shown = c.messages.slice(w.first, w.end);
    const keep = new Set<string>();
    const articles = shown.map(({ message, cursor }) => {
      const parts = c.parts.get(message.id) ?? [];
      const sig = `${cursor}|${parts.map((p) => `${p.key}@${p.cursor}`).join(",")}`;
      keep.add(message.id);
      const hit = this.articles.get(message.id);
      if (hit && hit.sig === sig) return hit.el;
      const el = renderMessage(message, parts);
      this.articles.set(message.id, { sig, el });
      return el;
    });
    for (const id of [...this.articles.keys()]) if (!keep.has(id)) this.articles.delete(id);

    this.element.replaceChildren(
      renderSessionHeader(c),
      h("h2", {}, "Messages"),
      pager("messages", this.messagePaging, c.messages.length, true, this.rerender, "messages"),
      h("div", { class: "messages" }, ...articles),
      h("h2", {}, "Files changed"),
      pager("diffs", this.diffPaging, c.diffs.length, true, this.rerender, "diffs"),
      this.renderDiffs(c),
    );
  }

  private renderDiffs(c: Conversation): HTMLElement {
    const w = this.diffPaging.window(c.diffs.length, true);
    return h("div", { class: "diffs" }, ...c.diffs.slice(w.first, w.end).map(renderDiff));
  }
}

function renderSessionHeader(c: Conversation): HTMLElement {
  const s = c.session;
  const models = c.models?.models ?? [];
  const def = c.models?.defaultModel;
  return h(
    "header",
    { class: "session" },
    h("h1", { attrs: { id: "session-title" } }, s?.title || "(untitled session)"),
    h(
      "dl",
      { class: "facts" },
      ...fact("session", s?.id),
      ...fact("directory", s?.directory),
      ...fact("project", s?.projectId),
      ...fact("agent", s?.agent),
      ...fact("updated", timeText(s?.updatedAt)),
      ...fact("models", models.map((m) => `${m.name || m.modelId}${def && def.modelId === m.modelId && def.providerId === m.providerId ? " (default)" : ""}`).join(", ")),
    ),
  );
}

function fact(name: string, value: string | undefined): HTMLElement[] {
  return value ? [h("dt", {}, name), h("dd", { data: { fact: name } }, value)] : [];
}

function renderMessage(m: Message, parts: readonly PartEntry[]): HTMLElement {
  const role = enumName(Role, m.role, "ROLE_");
  const meta: string[] = [];
  if (m.model?.modelId) meta.push(m.model.modelId);
  meta.push(timeText(m.createdAt));
  if (m.tokens && (m.tokens.input > 0n || m.tokens.output > 0n)) meta.push(`${m.tokens.input} in / ${m.tokens.output} out`);
  if (m.costUsd > 0) meta.push(`$${m.costUsd.toFixed(4)}`);
  if (m.finishReason) meta.push(m.finishReason);
  if (!m.completedAt && m.role === Role.ASSISTANT) meta.push("working…");
  return h(
    "article",
    { class: `message role-${role}`, data: { id: m.id, role } },
    h("header", {}, h("span", { class: "role" }, role), h("span", { class: "message-id" }, m.id), h("span", { class: "meta" }, meta.filter(Boolean).join(" · "))),
    m.error ? h("div", { class: "message-error" }, clip(m.error, MAX_RENDERED_TEXT_CHARS)) : null,
    h("div", { class: "parts" }, ...parts.map((p) => renderPart(p.part))),
  );
}

function renderPart(p: Part): HTMLElement {
  const type = p.content.case ?? "empty";
  const el = h("div", { class: `part part-${type}`, data: { partId: p.id, type } });
  switch (p.content.case) {
    case "text":
      el.append(h("div", { class: "body" }, clip(p.content.value.text, MAX_RENDERED_TEXT_CHARS)));
      break;
    case "reasoning":
      el.append(h("details", {}, h("summary", {}, "reasoning"), h("div", { class: "body" }, clip(p.content.value.text, MAX_RENDERED_TEXT_CHARS))));
      break;
    case "tool": {
      const t = p.content.value;
      const status = enumName(ToolStatus, t.status, "TOOL_STATUS_");
      el.dataset["status"] = status;
      append(el, [
        h("div", { class: "tool-head" }, h("span", { class: "tool-name" }, t.tool), h("span", { class: "tool-title" }, t.title), h("span", { class: `badge status-${status}` }, status)),
        t.inputJson ? h("details", {}, h("summary", {}, "input"), h("pre", {}, clip(t.inputJson, MAX_RENDERED_TEXT_CHARS))) : null,
        t.output ? h("details", {}, h("summary", {}, "output"), h("pre", { class: "tool-output" }, clip(t.output, MAX_RENDERED_TEXT_CHARS))) : null,
        t.error ? h("pre", { class: "tool-error" }, clip(t.error, MAX_RENDERED_TEXT_CHARS)) : null,
      ]);
      break;
    }
    case "file": {
      const f = p.content.value;
      el.append(h("div", { class: "body" }, `file ${f.filename || f.path || f.url} ${f.mime ? `(${f.mime})` : ""}`));
      break;
    }
    case "stepStart":
      el.append(h("div", { class: "step" }, `step started${p.content.value.snapshot ? ` · ${p.content.value.snapshot}` : ""}`));
      break;
    case "stepFinish": {
      const s = p.content.value;
      const tokens = s.tokens ? ` · ${s.tokens.input} in / ${s.tokens.output} out` : "";
      el.append(h("div", { class: "step" }, `step finished${s.reason ? ` · ${s.reason}` : ""}${tokens}${s.costUsd > 0 ? ` · $${s.costUsd.toFixed(4)}` : ""}`));
      break;
    }
    default:
      el.append(h("div", { class: "step" }, "(empty part)"));
  }
  return el;
}

function renderDiff(d: DiffEntry): HTMLElement {
  const f = d.diff;
  const change = enumName(ChangeKind, f.change, "CHANGE_KIND_");
  const name = f.oldPath && f.oldPath !== f.path ? `${f.oldPath} → ${f.path}` : f.path;
  const lines = clip(f.patch, MAX_RENDERED_TEXT_CHARS).split("\n");
  return h(
    "div",
    { class: "diff", data: { cursor: d.cursor.toString(), path: f.path } },
    h("div", { class: "diff-head" }, h("span", { class: "diff-path" }, name), h("span", { class: `badge change-${change}` }, change), h("span", { class: "adds" }, `+${f.additions}`), h("span", { class: "dels" }, `−${f.deletions}`), f.messageId ? h("span", { class: "meta" }, `by ${f.messageId}`) : null),
    f.patch ? h("pre", { class: "patch" }, ...lines.map((l) => h("span", { class: l.startsWith("+") ? "line add" : l.startsWith("-") ? "line del" : l.startsWith("@@") ? "line hunk" : "line" }, `${l}\n`))) : null,
  );
}
