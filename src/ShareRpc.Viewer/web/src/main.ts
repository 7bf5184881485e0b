// The /view page of sharerpc serve (docs/viewer.md): the sturdy ref comes from the fragment (never
// sent to a server, a log or a proxy), the page follows the share over gRPC-Web on its own origin.

import { follow } from "./connection.js";
import { refFromHash } from "./ref.js";
import { ShareState } from "./state.js";
import { Page } from "./view.js";

function start(): void {
  const root = document.getElementById("app")!;
  // A new link in the same tab is a new view.
  window.addEventListener("hashchange", () => window.location.reload());
  const ref = refFromHash(window.location.hash);
  if (typeof ref === "string") {
    Page.failed(root, "No share to show", ref);
    return;
  }
  const state = new ShareState();
  const page = new Page(root, state);
  follow(ref, state, page).catch((e: unknown) => {
    page.phase({ kind: "failed", title: "The viewer stopped", message: e instanceof Error ? e.message : String(e) });
  });
}

start();
