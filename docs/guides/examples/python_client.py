"""Write to a ShareRpc share and read it back from Python: grpcio and the generated stubs, no SDK.

    python3 python_client.py 'sharerpc://127.0.0.1:7878/SHARE/CAPABILITY#SECRET'

The stubs come from protos/sharerpc/v1/share_rpc.proto (docs/guides/any-language.md); put the
directory they were generated into on PYTHONPATH.
"""
import sys
import urllib.parse
import uuid

import grpc
from sharerpc.v1 import share_rpc_pb2 as pb
from sharerpc.v1 import share_rpc_pb2_grpc as pb_grpc

sturdy_ref = sys.argv[1]
target = urllib.parse.urlsplit(sturdy_ref).netloc  # sharerpc://HOST:PORT/SHARE/CAPABILITY#SECRET
# sharerpc:// is h2c; for sharerpcs:// use grpc.secure_channel(target, grpc.ssl_channel_credentials()).
stub = pb_grpc.ShareRpcStub(grpc.insecure_channel(target))

# 1. Redeem the sturdy ref for a live ref; every other call carries it as a bearer token.
live = stub.RedeemShare(pb.RedeemShareRequest(sturdy_ref=sturdy_ref))
auth = [("authorization", "Bearer " + live.live_ref)]
print(f"redeemed: epoch {live.epoch}, cursor {live.cursor}, rights {[pb.Right.Name(r) for r in live.rights]}")

# 2. A batch of ops from one producer: seq counts 1, 2, 3 ... per producer; op ids are unique forever.
producer = uuid.uuid4().hex
ops = [
    pb.Op(op_id=uuid.uuid4().hex, seq=i + 1,
          put=pb.Put(collection="notes", key=f"py-{i}", value=f"hello from python {i}".encode(), content_type="text/plain"))
    for i in range(3)
]
batch = pb.AppendOpsRequest(batch_id=uuid.uuid4().hex, producer_id=producer, ops=ops)

# AppendOps is a bidi stream: batches go out without waiting, one ack per batch comes back in order.
for attempt in ("first send", "resend"):  # the resend is what a client does after a lost ack
    for ack in stub.AppendOps(iter([batch]), metadata=auth):
        statuses = [pb.OpStatus.Name(a.status) for a in ack.acks]
        print(f"{attempt}: {pb.BatchStatus.Name(ack.batch_status)}, cursor {ack.cursor}, {statuses}")

# 3. Read the log back from cursor 0. Subscribe stays open for live ops: stop at the head.
head = ack.cursor
events = stub.Subscribe(pb.SubscribeRequest(from_cursor=0), metadata=auth)
for event in events:
    if event.WhichOneof("event") == "op":
        op = event.op
        print(f"cursor {op.cursor}: {op.op.WhichOneof('kind')} {op.op.put.collection}/{op.op.put.key}")
        if op.cursor >= head:
            events.cancel()
            break

# 4. The materialized documents.
snapshot = stub.GetSnapshot(pb.GetSnapshotRequest(collection="notes"), metadata=auth)
print("snapshot:", ", ".join(f"{d.key}={d.value.decode()} (v{d.version})" for d in snapshot.documents))

# 5. Errors carry a gRPC status and a machine-readable reason in the sharerpc-reason trailer.
try:
    stub.GetSnapshot(pb.GetSnapshotRequest())  # no live ref
except grpc.RpcError as e:
    print(f"without a live ref: {e.code().name} ({dict(e.trailing_metadata()).get('sharerpc-reason')})")
