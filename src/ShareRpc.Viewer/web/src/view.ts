// The page around the share: a status bar (phase, cursor, head), the notice (reconnecting, access
// revoked, a bad link), tabs between the conversation and the documents, the op tail, and a footer
// with the counters that show the stream applied without a gap or a repeat. Renders are throttled
// to one per RENDER_INTERVAL_MS; the same counters are on <body data-*> for tests and tools.

import { Right } from "../gen/sharerpc/v1/share_rpc_pb.js";
import type { FollowListener, Phase, Redeemed } from "./connection.js";
import { formatBytes, h, shortId } from "./dom.js";
import { MAX_DOCUMENT_BYTES, MAX_DOCUMENTS, RENDER_INTERVAL_MS } from "./limits.js";
import { conversationOf, isAgentSession } from "./session.js";
import { ShareState } from "./state.js";
import { ConversationView } from "./view-conversation.js";
import { DocumentsView, TailView } from "./view-documents.js";

type Mode = "conversation" | "documents";

export class Page implements FollowListener {
  private phaseNow: Phase = { kind: "connecting" };
  private redeemedNow: Redeemed | null = null;
  private mode: Mode | null = null;
  private reconnects = 0;
  private cspViolations = 0;
  private timer = 0;
  private lastRender = 0;

  private readonly status = h("div", { class: "status", attrs: { id: "status", "aria-live": "polite" } });
  private readonly notice = h("div", { class: "notice", attrs: { id: "notice", role: "alert", hidden: "" } });
  private readonly tabs = h("nav", { class: "tabs" });
  private readonly main = h("main", { class: "main" });
  private readonly footer = h("footer", { attrs: { id: "counters" } });
  private readonly conversation = new ConversationView(() => this.renderNow());
  private readonly documents = new DocumentsView(() => this.renderNow());
  private readonly tail = new TailView(() => this.renderNow());

  constructor(
    root: HTMLElement,
    private readonly state: ShareState,
  ) {
    root.replaceChildren(
      h("header", { class: "bar" }, h("span", { class: "brand" }, "ShareRpc viewer"), this.status),
      this.notice,
      this.tabs,
      h("div", { class: "columns" }, this.main, this.tail.element),
      this.footer,
    );
    document.addEventListener("securitypolicyviolation", () => {
      this.cspViolations++;
      document.body.dataset["cspViolations"] = String(this.cspViolations);
    });
    document.body.dataset["cspViolations"] = "0";
    this.renderNow();
  }

  /** A link that cannot work (bad ref, no ref): the message, and nothing else happens. */
  static failed(root: HTMLElement, title: string, message: string): void {
    new Page(root, new ShareState()).phase({ kind: "failed", title, message });
  }

  phase(phase: Phase): void {
    if (phase.kind === "reconnecting" && this.phaseNow.kind !== "reconnecting") this.reconnects++;
    this.phaseNow = phase;
    this.renderNow();
  }

  redeemed(redeemed: Redeemed): void {
    this.redeemedNow = redeemed;
    this.changed();
  }

  streams(open: number): void {
    document.body.dataset["streams"] = String(open);
  }

  changed(): void {
    if (this.timer !== 0) return;
    const wait = Math.max(0, this.lastRender + RENDER_INTERVAL_MS - performance.now());
    this.timer = window.setTimeout(() => {
      this.timer = 0;
      requestAnimationFrame(() => this.renderNow());
    }, wait);
  }

  private renderNow(): void {
    this.lastRender = performance.now();
    this.renderStatus();
    this.renderNotice();
    if (!this.state.loaded) {
      // nothing to show yet (connecting), or never (a bad link)
      this.tabs.replaceChildren();
      this.main.replaceChildren();
      this.tail.element.hidden = true;
      this.footer.replaceChildren();
      return;
    }
    const profile = isAgentSession(this.state);
    const mode: Mode = this.mode ?? (profile ? "conversation" : "documents");
    this.renderTabs(profile, mode);
    const view = mode === "conversation" ? this.conversation : this.documents;
    view.render(this.state);
    if (this.main.firstChild !== view.element) this.main.replaceChildren(view.element);
    this.tail.element.hidden = false;
    this.tail.render(this.state);
    this.renderFooter();
    if (mode === "conversation") {
      const title = conversationOf(this.state).session?.title;
      document.title = title ? `${title} · ShareRpc viewer` : "ShareRpc viewer";
    }
  }

  private renderTabs(profile: boolean, mode: Mode): void {
    const tab = (m: Mode, label: string) =>
      h("button", { class: m === mode ? "selected" : "", attrs: { type: "button" }, data: { tab: m }, onclick: () => ((this.mode = m), this.renderNow()) }, label);
    this.tabs.replaceChildren(...(profile ? [tab("conversation", "Conversation"), tab("documents", "Documents")] : [tab("documents", "Documents")]));
    document.body.dataset["mode"] = mode;
  }

  private renderStatus(): void {
    const p = this.phaseNow;
    const s = this.state;
    const label = p.kind === "failed" ? "error" : p.kind === "reconnecting" ? "reconnecting…" : p.kind;
    const body = document.body.dataset;
    body["phase"] = p.kind;
    body["reconnects"] = String(this.reconnects);
    body["cursor"] = s.cursor.toString();
    body["head"] = s.head.toString();
    body["applied"] = String(s.applied);
    body["duplicates"] = String(s.duplicatesSkipped);
    body["gaps"] = String(s.gaps);
    this.status.replaceChildren(h("span", { class: `pill phase-${p.kind}`, data: { phase: p.kind } }, label), p.kind === "failed" ? "" : ` cursor ${s.cursor} · head ${s.head}`);
  }

  private renderNotice(): void {
    const p = this.phaseNow;
    const s = this.state;
    let notice: (string | HTMLElement)[] | null = null;
    if (p.kind === "reconnecting") {
      notice = [h("strong", {}, "Reconnecting…"), ` The connection to the server dropped (${p.reason}); resuming from cursor ${s.cursor}, attempt ${p.attempt}.`];
    } else if (p.kind === "revoked") {
      notice = [h("strong", {}, "Access revoked."), ` ${p.message}`];
    } else if (p.kind === "failed") {
      notice = [h("strong", {}, `${p.title}.`), ` ${p.message}`];
    } else if (s.evicted > 0) {
      notice = [h("strong", {}, "Partial view."), ` ${s.evicted.toLocaleString("en")} documents were dropped to stay within this page's limits (${MAX_DOCUMENTS.toLocaleString("en")} documents, ${formatBytes(MAX_DOCUMENT_BYTES)}); the least recently written are not shown.`];
    } else if (isAgentSession(s) && conversationOf(s).skippedCount > 0) {
      const c = conversationOf(s);
      const first = c.skipped[0];
      notice = [h("strong", {}, `${c.skippedCount} records could not be read`), first ? ` (e.g. ${first.collection}/${first.key}: ${first.reason}).` : "."];
    }
    this.notice.className = `notice notice-${p.kind}`;
    this.notice.dataset["kind"] = notice === null ? "" : p.kind === "live" || p.kind === "connecting" ? "partial" : p.kind;
    if (notice === null) {
      this.notice.hidden = true;
      this.notice.replaceChildren();
    } else {
      this.notice.hidden = false;
      this.notice.replaceChildren(...notice);
    }
  }

  private renderFooter(): void {
    const s = this.state;
    const r = this.redeemedNow;
    const rights = r ? r.rights.map((x) => Right[x]?.replace("RIGHT_", "").toLowerCase()).join("+") : "";
    this.footer.replaceChildren(
      r ? `share ${shortId(r.shareId)} · capability ${shortId(r.capabilityId)} (${rights}) · epoch ${r.epoch} · ` : "",
      `ops applied live ${s.applied.toLocaleString("en")} · duplicates skipped ${s.duplicatesSkipped} · gaps ${s.gaps} · reconnects ${this.reconnects} · `,
      `kept ${s.documentCount.toLocaleString("en")} documents (${formatBytes(s.documentBytes)})`,
    );
  }
}
