#!/usr/bin/python3
"""grpcio peer of the ShareRpc conformance tests: the sharerpc.v1 contract end to end.

    contract_client.py --target 127.0.0.1:PORT [--case full|smoke]
                       [--tls --ca CERT.pem --override localhost]

Uses only grpcio and the stubs generate.sh made from protos/sharerpc/v1/share_rpc.proto (in gen/).
Prints "PASS <step>" per step and "ALL PASS" at the end (exit 0); on the first broken expectation
prints "FAIL <what>" and exits 1. Live refs travel as `authorization: Bearer <live_ref>`.
"""
import argparse
import os
import sys
import threading
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402
from sharerpc.v1 import share_rpc_pb2 as pb  # noqa: E402
from sharerpc.v1 import share_rpc_pb2_grpc as pb_grpc  # noqa: E402

TIMEOUT = 20  # seconds, per call: a hung server fails the step instead of the test run
ALL_RIGHTS = [pb.RIGHT_READ, pb.RIGHT_APPEND, pb.RIGHT_DELEGATE, pb.RIGHT_REVOKE]


class Failure(Exception):
    pass


def check(cond, what):
    if not cond:
        raise Failure(what)


def bearer(live_ref):
    return (("authorization", "Bearer " + live_ref),)


def reason(err):
    """The sharerpc-reason trailer of a failed call, or None."""
    for key, value in err.trailing_metadata() or ():
        if key == "sharerpc-reason":
            return value
    return None


def expect_error(call, allowed, what):
    """Runs call(); it must fail with one of the `allowed` (status code, sharerpc-reason) pairs
    (reason None: any). Returns the pair it got."""
    try:
        call()
    except grpc.RpcError as err:
        got = (err.code(), reason(err))
        ok = any(got[0] == code and (why is None or got[1] == why) for code, why in allowed)
        want = " or ".join(f"{code.name} {why or ''}".strip() for code, why in allowed)
        check(ok, f"{what}: expected {want}, got {got[0].name} {got[1]} ({err.details()})")
        return got
    raise Failure(f"{what}: succeeded, expected an error")


def op(seq):
    """Odd seqs put a document, even ones append to a log: both kinds cross the wire."""
    if seq % 2 == 1:
        kind = {"put": pb.Put(collection="notes", key=f"k{seq}", value=f"value {seq}".encode(), content_type="text/plain")}
    else:
        kind = {"append": pb.Append(collection="log", value=f"line {seq}".encode(), content_type="text/plain")}
    return pb.Op(op_id=str(uuid.uuid4()), seq=seq, **kind)


def create_share(stub):
    key, secret = "py-" + uuid.uuid4().hex, os.urandom(32)
    first = stub.CreateShare(pb.CreateShareRequest(share_key=key, owner_secret=secret, title="python"), timeout=TIMEOUT)
    check(first.created and first.sturdy_ref and first.share_id, f"first CreateShare: {first}")
    # A retry after a lost response: same key and secret find the same share again.
    again = stub.CreateShare(pb.CreateShareRequest(share_key=key, owner_secret=secret, title="python"), timeout=TIMEOUT)
    check(not again.created, "retried CreateShare says created=true")
    check(again.sturdy_ref == first.sturdy_ref and again.share_id == first.share_id, "retried CreateShare returned another share")
    expect_error(lambda: stub.CreateShare(pb.CreateShareRequest(share_key=key, owner_secret=os.urandom(32)), timeout=TIMEOUT),
                 {(grpc.StatusCode.ALREADY_EXISTS, None)}, "same key, other secret")
    print("PASS create: created, retry created=false same ref, other secret ALREADY_EXISTS")
    return first


def redeem(stub, sturdy_ref, rights, what):
    r = stub.RedeemShare(pb.RedeemShareRequest(sturdy_ref=sturdy_ref), timeout=TIMEOUT)
    check(r.live_ref and r.capability_id and r.epoch >= 1, f"{what}: redeem gave {r}")
    check(sorted(r.rights) == sorted(rights), f"{what}: rights {list(r.rights)}, expected {rights}")
    check(r.live_ref_expires_at.seconds > 0, f"{what}: no live_ref_expires_at")
    return r


def check_applied(reply, batch, first_cursor, what):
    """An ACCEPTED ack for `batch`: one APPLIED ack per op, in order, at consecutive cursors."""
    check(reply.batch_id == batch.batch_id, f"{what}: ack for batch {reply.batch_id!r}, expected {batch.batch_id!r}")
    check(reply.batch_status == pb.BATCH_STATUS_ACCEPTED, f"{what}: batch status {reply.batch_status}")
    check([a.op_id for a in reply.acks] == [o.op_id for o in batch.ops], f"{what}: acks are not the batch's ops in order")
    for i, a in enumerate(reply.acks):
        check(a.status == pb.OP_STATUS_APPLIED, f"{what}: op {i} status {pb.OpStatus.Name(a.status)}")
        check(a.cursor == first_cursor + i, f"{what}: op {i} at cursor {a.cursor}, expected {first_cursor + i}")
        check(a.version >= 1, f"{what}: op {i} version {a.version}")
    check(reply.cursor == first_cursor + len(batch.ops) - 1, f"{what}: batch cursor {reply.cursor}")


def make_batches(count, per_batch):
    producer = "py-producer-" + uuid.uuid4().hex
    batches, seq = [], 1
    for b in range(count):
        ops = [op(seq + i) for i in range(per_batch)]
        seq += per_batch
        batches.append(pb.AppendOpsRequest(batch_id=f"{producer}-b{b}", producer_id=producer, ops=ops))
    return batches


def append_pipelined(stub, live_ref, head):
    """Three batches written before any ack is read, then batch 1 again, as a replay would."""
    batches = make_batches(3, 2)
    all_sent, acks_read = threading.Event(), threading.Event()

    def requests():
        yield from batches
        all_sent.set()  # grpcio asks for the next message only once it has sent the previous one
        if acks_read.wait(TIMEOUT):
            yield batches[0]

    call = stub.AppendOps(requests(), metadata=bearer(live_ref), timeout=TIMEOUT)
    check(all_sent.wait(TIMEOUT), "pipelined: the three batches were not sent")
    replies = iter(call)
    acks = [next(replies) for _ in batches]
    acks_read.set()
    for k, (reply, batch) in enumerate(zip(acks, batches)):
        check_applied(reply, batch, head + 1 + 2 * k, f"batch {k + 1}")
    dup = next(replies)
    check(dup.batch_id == batches[0].batch_id, f"resend: ack for {dup.batch_id!r}")
    for a, first in zip(dup.acks, acks[0].acks):
        check(a.status == pb.OP_STATUS_DUPLICATE, f"resend: status {pb.OpStatus.Name(a.status)}, expected DUPLICATE")
        check(a.cursor == first.cursor, f"resend: cursor {a.cursor}, expected the first cursor {first.cursor}")
    rest = list(replies)
    check(not rest and call.code() == grpc.StatusCode.OK, f"AppendOps ended with {call.code()} after {len(rest)} extra replies")
    print("PASS append: 3 batches pipelined, acks in order with per-op APPLIED cursors; resend DUPLICATE with first cursors")
    return [o for b in batches for o in b.ops], batches[0].producer_id


def subscribe_from_start(stub, live_ref, ops, producer):
    call = stub.Subscribe(pb.SubscribeRequest(from_cursor=0), metadata=bearer(live_ref), timeout=TIMEOUT)
    seen = []
    for event in call:
        if event.WhichOneof("event") == "op":
            seen.append(event.op)
            if len(seen) == len(ops):
                break
    call.cancel()  # a subscription never ends by itself: it waits for live ops
    check([c.cursor for c in seen] == list(range(1, len(ops) + 1)), f"subscribe: cursors {[c.cursor for c in seen]}")
    check([c.op for c in seen] == ops, "subscribe: the ops differ from those appended, or are out of order")
    check(all(c.producer_id == producer and c.committed_at.seconds > 0 for c in seen), "subscribe: producer_id / committed_at")
    print(f"PASS subscribe: from cursor 0, {len(seen)} ops in order")


def snapshot_documents(stub, live_ref):
    docs, token = [], ""
    while True:
        page = stub.GetSnapshot(pb.GetSnapshotRequest(page_token=token), metadata=bearer(live_ref), timeout=TIMEOUT)
        docs.extend(page.documents)
        token = page.next_page_token
        if not token:
            return page.cursor, docs


def check_snapshot(stub, live_ref, ops):
    cursor, docs = snapshot_documents(stub, live_ref)
    check(cursor == len(ops), f"snapshot: cursor {cursor}, expected {len(ops)}")
    got = {(d.collection, d.key): (d.value, d.cursor) for d in docs}
    want = {}
    for at, o in enumerate(ops, start=1):
        if o.WhichOneof("kind") == "put":
            want[(o.put.collection, o.put.key)] = (o.put.value, at)
        else:  # an append's key is its cursor, in decimal
            want[(o.append.collection, str(at))] = (o.append.value, at)
    check(got == want, f"snapshot: documents {sorted(got)}, expected {sorted(want)}")
    print(f"PASS snapshot: {len(docs)} documents at cursor {cursor}")


def delegate_read_only(stub, owner_live):
    child = stub.DelegateCapability(pb.DelegateCapabilityRequest(rights=[pb.RIGHT_READ], secret=os.urandom(32), note="viewer"),
                                    metadata=bearer(owner_live), timeout=TIMEOUT)
    check(child.capability_id and child.sturdy_ref, f"delegate: {child}")
    viewer = redeem(stub, child.sturdy_ref, [pb.RIGHT_READ], "read-only child")
    snapshot_documents(stub, viewer.live_ref)  # READ is enough to read
    batch = make_batches(1, 1)[0]
    expect_error(lambda: list(stub.AppendOps(iter([batch]), metadata=bearer(viewer.live_ref), timeout=TIMEOUT)),
                 {(grpc.StatusCode.PERMISSION_DENIED, "rights")}, "AppendOps with a READ-only live ref")
    print("PASS delegate: read-only child reads; its AppendOps is PERMISSION_DENIED (rights)")
    return child, viewer


def revoke(stub, owner_sturdy_ref, owner, child, viewer):
    r = stub.RevokeCapability(pb.RevokeCapabilityRequest(capability_id=child.capability_id),
                              metadata=bearer(owner.live_ref), timeout=TIMEOUT)
    check(r.epoch > owner.epoch, f"revoke: epoch {r.epoch}, was {owner.epoch}")
    check(child.capability_id in r.revoked_capability_ids, f"revoke: revoked {list(r.revoked_capability_ids)}")
    # The fence: the revoked holder is refused, whichever check (revoked or stale epoch) fires first.
    code, why = expect_error(lambda: snapshot_documents(stub, viewer.live_ref),
                             {(grpc.StatusCode.PERMISSION_DENIED, "revoked"), (grpc.StatusCode.UNAUTHENTICATED, "epoch-stale")},
                             "the revoked capability's live ref")
    expect_error(lambda: snapshot_documents(stub, owner.live_ref), {(grpc.StatusCode.UNAUTHENTICATED, "epoch-stale")},
                 "the owner's live ref from before the revoke")
    expect_error(lambda: stub.RedeemShare(pb.RedeemShareRequest(sturdy_ref=child.sturdy_ref), timeout=TIMEOUT),
                 {(grpc.StatusCode.PERMISSION_DENIED, "revoked")}, "redeeming the revoked sturdy ref")
    again = redeem(stub, owner_sturdy_ref, ALL_RIGHTS, "owner after revoke")
    check(again.epoch == r.epoch, f"owner redeemed at epoch {again.epoch}, revoke said {r.epoch}")
    snapshot_documents(stub, again.live_ref)
    print(f"PASS revoke: epoch {owner.epoch} -> {r.epoch}; revoked live ref {code.name} ({why}); "
          "owner's stale live ref UNAUTHENTICATED (epoch-stale); owner redeems again and reads")


def garbage_live_ref(stub):
    code, why = expect_error(lambda: snapshot_documents(stub, "garbage-not-a-live-ref"),
                             {(grpc.StatusCode.UNAUTHENTICATED, None)}, "a garbage live ref")
    print(f"PASS garbage live ref: {code.name} ({why})")


def smoke(stub):
    """The TLS case: create, redeem, one batch acked, the snapshot shows it."""
    share = create_share(stub)
    owner = redeem(stub, share.sturdy_ref, ALL_RIGHTS, "owner")
    batch = make_batches(1, 2)[0]
    replies = list(stub.AppendOps(iter([batch]), metadata=bearer(owner.live_ref), timeout=TIMEOUT))
    check(len(replies) == 1, f"append: {len(replies)} acks for one batch")
    check_applied(replies[0], batch, 1, "batch")
    print("PASS append: one batch, APPLIED")
    check_snapshot(stub, owner.live_ref, list(batch.ops))


def full(stub):
    share = create_share(stub)
    owner = redeem(stub, share.sturdy_ref, ALL_RIGHTS, "owner")
    check(owner.share_id == share.share_id and owner.cursor == 0, f"redeem: share {owner.share_id} cursor {owner.cursor}")
    print(f"PASS redeem: live ref at epoch {owner.epoch}, all four rights")
    ops, producer = append_pipelined(stub, owner.live_ref, owner.cursor)
    subscribe_from_start(stub, owner.live_ref, ops, producer)
    check_snapshot(stub, owner.live_ref, ops)
    child, viewer = delegate_read_only(stub, owner.live_ref)
    revoke(stub, share.sturdy_ref, owner, child, viewer)
    garbage_live_ref(stub)


def channel(args):
    if not args.tls:
        return grpc.insecure_channel(args.target)
    with open(args.ca, "rb") as f:
        creds = grpc.ssl_channel_credentials(root_certificates=f.read())
    return grpc.secure_channel(args.target, creds, options=[("grpc.ssl_target_name_override", args.override)])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", required=True, help="HOST:PORT of sharerpc serve")
    p.add_argument("--case", choices=["full", "smoke"], default="full")
    p.add_argument("--tls", action="store_true")
    p.add_argument("--ca", help="PEM root to trust (with --tls)")
    p.add_argument("--override", default="localhost", help="TLS target name (with --tls)")
    args = p.parse_args()
    try:
        with channel(args) as ch:
            stub = pb_grpc.ShareRpcStub(ch)
            (full if args.case == "full" else smoke)(stub)
    except (Failure, grpc.RpcError, StopIteration) as e:
        detail = f"{e.code().name} {e.details()}" if isinstance(e, grpc.RpcError) else repr(e) if isinstance(e, StopIteration) else str(e)
        print(f"FAIL {detail}")
        return 1
    print("ALL PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
