// The page as a gRPC-Web peer of sharerpc.v1.ShareRpc (its own origin: the server that served it):
// redeem the sturdy ref, subscribe with a snapshot, apply what arrives, and on a dropped stream
// redeem again and resume from the last applied cursor. Errors are sorted the way the SDK sorts
// them (src/ShareRpc.Client/ShareRpcCallException.cs): retrying cannot help (revoked, unknown share,
// bad secret, no READ), redeem again (UNAUTHENTICATED: a revoke elsewhere moved the epoch, the live
// ref expired), or the connection broke (reconnect with backoff).

import { Code, ConnectError, createClient, type Client } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { Right, ShareRpc, type CommittedOp } from "../gen/sharerpc/v1/share_rpc_pb.js";
import { BACKOFF_INITIAL_MS, BACKOFF_MAX_MS, REDEEM_TIMEOUT_MS, STREAM_SILENCE_MS, TAIL_BACKFILL_OPS } from "./limits.js";
import type { SturdyRef } from "./ref.js";
import type { ShareState } from "./state.js";

export type Phase =
  | { readonly kind: "connecting" }
  | { readonly kind: "live" }
  | { readonly kind: "reconnecting"; readonly reason: string; readonly attempt: number }
  | { readonly kind: "revoked"; readonly message: string }
  | { readonly kind: "failed"; readonly title: string; readonly message: string };

export interface Redeemed {
  readonly shareId: string;
  readonly capabilityId: string;
  readonly rights: readonly Right[];
  readonly epoch: bigint;
  readonly cursor: bigint;
  readonly liveRef: string;
  readonly expiresAt: Date | null;
}

export interface FollowListener {
  phase(phase: Phase): void;
  redeemed(redeemed: Redeemed): void;
  /** Something in the state changed: render (throttled by the view). */
  changed(): void;
  /** Subscribe streams open now (0 once the view has stopped). */
  streams(open: number): void;
}

let open = 0;
async function counted<T>(ui: FollowListener, work: () => Promise<T>): Promise<T> {
  ui.streams(++open);
  try {
    return await work();
  } finally {
    ui.streams(--open);
  }
}

type Verdict = { kind: "fatal"; phase: Phase } | { kind: "redeem" } | { kind: "resubscribe" } | { kind: "retry"; reason: string };

class GapError extends Error {}
class SilenceError extends Error {}
class StreamEndedError extends Error {}

/** Pauses d/2..d, d doubling from BACKOFF_INITIAL_MS to BACKOFF_MAX_MS (as the SDK's backoff). */
class Backoff {
  private next = BACKOFF_INITIAL_MS;

  reset(): void {
    this.next = BACKOFF_INITIAL_MS;
  }

  wait(): Promise<void> {
    const ms = this.next / 2 + (Math.random() * this.next) / 2;
    this.next = Math.min(this.next * 2, BACKOFF_MAX_MS);
    return new Promise((resolve) => setTimeout(resolve, ms));
  }
}

const rightName = (r: Right) => Right[r]?.toLowerCase() ?? String(r);

export function classify(e: unknown): Verdict {
  if (e instanceof GapError) return { kind: "resubscribe" };
  if (e instanceof SilenceError) return { kind: "retry", reason: `nothing arrived for ${STREAM_SILENCE_MS / 1000} s` };
  if (e instanceof StreamEndedError) return { kind: "retry", reason: "the server ended the stream (it may be restarting)" };
  const err = ConnectError.from(e);
  const reason = err.metadata.get("sharerpc-reason") ?? "";
  const fatal = (title: string, message: string): Verdict => ({ kind: "fatal", phase: { kind: "failed", title, message } });
  switch (err.code) {
    case Code.PermissionDenied:
      if (reason === "revoked") return { kind: "fatal", phase: { kind: "revoked", message: "Access revoked: the owner of this share revoked this link. What is shown is the share as it was; it no longer updates." } };
      if (reason === "capability-expired") return fatal("This link has expired", "The capability in this link has passed its expiry; ask its owner for a new link.");
      if (reason === "bad-secret") return fatal("This link is not valid here", "The server does not know this capability, or the secret in the link is wrong.");
      if (reason === "rights") return fatal("This link cannot read the share", "The capability in this link lacks the READ right.");
      return fatal("Access denied", err.rawMessage);
    case Code.NotFound:
      return fatal("Share not found", "This server has no such share (it may have been on another server, or deleted).");
    case Code.Unauthenticated:
      return { kind: "redeem" };
    case Code.InvalidArgument:
      return fatal("The server refused this link", err.rawMessage);
    case Code.Unimplemented:
      return fatal("No ShareRpc server here", "This address does not answer ShareRpc over gRPC-Web.");
    default:
      return { kind: "retry", reason: `${Code[err.code] ?? err.code}: ${err.rawMessage}` };
  }
}

async function redeem(client: Client<typeof ShareRpc>, ref: SturdyRef): Promise<Redeemed> {
  const r = await client.redeemShare({ sturdyRef: ref.text }, { timeoutMs: REDEEM_TIMEOUT_MS });
  const expires = r.liveRefExpiresAt;
  return {
    shareId: r.shareId,
    capabilityId: r.capabilityId,
    rights: r.rights,
    epoch: r.epoch,
    cursor: r.cursor,
    liveRef: r.liveRef,
    expiresAt: expires ? new Date(Number(expires.seconds) * 1000) : null,
  };
}

/** One Subscribe stream from the state's cursor; returns when the server ends it, throws when it breaks. */
async function stream(client: Client<typeof ShareRpc>, live: Redeemed, state: ShareState, ui: FollowListener, onEvent: () => void): Promise<void> {
  const abort = new AbortController();
  let silence = 0;
  const kick = () => {
    clearTimeout(silence);
    silence = window.setTimeout(() => abort.abort(new SilenceError()), STREAM_SILENCE_MS);
  };
  kick();
  try {
    const request = { fromCursor: state.loaded ? state.cursor + 1n : 0n, includeSnapshot: !state.loaded };
    const events = client.subscribe(request, { headers: { authorization: `Bearer ${live.liveRef}` }, signal: abort.signal });
    for await (const e of events) {
      kick();
      onEvent();
      if (e.event.case === "snapshot") {
        if (state.addSnapshotChunk(e.event.value)) {
          ui.changed();
          void backfill(client, live, state, ui);
        }
      } else if (e.event.case === "op") {
        if (state.apply(e.event.value) === "gap") throw new GapError(`op at cursor ${e.event.value.cursor} after ${state.cursor}`);
        ui.changed();
      } else if (e.event.case === "heartbeat") {
        state.heardHead(e.event.value.cursor);
        ui.changed();
      }
    }
  } catch (e) {
    if (abort.signal.reason instanceof SilenceError) throw abort.signal.reason;
    throw e;
  } finally {
    clearTimeout(silence);
    abort.abort();
  }
}

/** The ops just before the snapshot, for the tail only (best effort: the tail fills as ops arrive anyway). */
async function backfill(client: Client<typeof ShareRpc>, live: Redeemed, state: ShareState, ui: FollowListener): Promise<void> {
  const to = state.snapshotCursor ?? 0n;
  if (to === 0n) return;
  const from = to > BigInt(TAIL_BACKFILL_OPS) ? to - BigInt(TAIL_BACKFILL_OPS) + 1n : 1n;
  const abort = new AbortController();
  const ops: CommittedOp[] = [];
  await counted(ui, async () => {
    try {
      const events = client.subscribe({ fromCursor: from, includeSnapshot: false }, { headers: { authorization: `Bearer ${live.liveRef}` }, signal: abort.signal });
      for await (const e of events) {
        if (e.event.case !== "op") break; // a heartbeat: nothing more to read before the snapshot
        if (e.event.value.cursor <= to) ops.push(e.event.value);
        if (e.event.value.cursor >= to) break;
      }
    } catch {
      // best effort
    } finally {
      abort.abort();
    }
  });
  state.backfillTail(ops);
  ui.changed();
}

/** Follows the share until it is revoked or the link is found bad; never returns otherwise. */
export async function follow(ref: SturdyRef, state: ShareState, ui: FollowListener): Promise<void> {
  const client = createClient(ShareRpc, createGrpcWebTransport({ baseUrl: window.location.origin, useBinaryFormat: true }));
  const backoff = new Backoff();
  let attempt = 0;
  let staleInARow = 0;
  for (;;) {
    try {
      // Redeemed on every (re)connect: a revoked link is told at once, and a server that is back says so.
      const live = await redeem(client, ref);
      ui.redeemed(live);
      state.heardHead(live.cursor);
      if (!live.rights.includes(Right.READ)) {
        ui.phase({ kind: "failed", title: "This link cannot read the share", message: `Its rights are ${live.rights.map(rightName).join(", ") || "none"}; viewing needs read.` });
        return;
      }
      attempt = 0;
      ui.phase({ kind: "live" });
      await counted(ui, () =>
        stream(client, live, state, ui, () => {
          backoff.reset();
          staleInARow = 0;
        }),
      );
      throw new StreamEndedError();
    } catch (e) {
      const verdict = classify(e);
      state.dropPartialSnapshot();
      if (verdict.kind === "fatal") {
        ui.phase(verdict.phase);
        return;
      }
      if (verdict.kind === "resubscribe") continue;
      if (verdict.kind === "redeem" && ++staleInARow <= 2) continue; // the epoch moved: redeem and resume at once
      attempt++;
      ui.phase({ kind: "reconnecting", reason: verdict.kind === "retry" ? verdict.reason : "the live ref keeps going stale", attempt });
      await backoff.wait();
    }
  }
}
