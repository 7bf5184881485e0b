#!/usr/bin/python3
"""grpcio interop server: grpc.testing.TestService per grpc's doc/interop-test-descriptions.md.

Usage: interop_server.py --port N [--use_tls --cert PEM --key PEM] [--exit_on_stdin_close]
Prints "listening on PORT" once serving (port 0 picks a free port). Listens on 127.0.0.1.
UnimplementedCall and UnimplementedService are left unimplemented (they answer UNIMPLEMENTED).
"""
import argparse
import os
import signal
import sys
import threading
import time
from concurrent import futures

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402

import empty_pb2  # noqa: E402
import messages_pb2  # noqa: E402
import test_pb2_grpc  # noqa: E402

INITIAL_KEY = "x-grpc-test-echo-initial"
TRAILING_KEY = "x-grpc-test-echo-trailing-bin"
CODES = {c.value[0]: c for c in grpc.StatusCode}


def _payload(size):
    return messages_pb2.Payload(type=messages_pb2.COMPRESSABLE, body=b"\x00" * size)


def _echo_metadata(context):
    md = context.invocation_metadata() or ()
    initial = [(k, v) for k, v in md if k == INITIAL_KEY]
    trailing = [(k, v) for k, v in md if k == TRAILING_KEY]
    if initial:
        context.send_initial_metadata(initial)
    if trailing:
        context.set_trailing_metadata(trailing)


def _echo_status(request, context):
    """Ends the call with request.response_status when set; True when it did."""
    if request.HasField("response_status") and request.response_status.code != 0:
        code = CODES.get(request.response_status.code, grpc.StatusCode.UNKNOWN)
        context.set_code(code)
        context.set_details(request.response_status.message)
        return True
    return False


class TestService(test_pb2_grpc.TestServiceServicer):
    def EmptyCall(self, request, context):
        _echo_metadata(context)
        return empty_pb2.Empty()

    def UnaryCall(self, request, context):
        _echo_metadata(context)
        if _echo_status(request, context):
            return messages_pb2.SimpleResponse()
        return messages_pb2.SimpleResponse(payload=_payload(request.response_size))

    def CacheableUnaryCall(self, request, context):
        return messages_pb2.SimpleResponse(payload=messages_pb2.Payload(body=str(time.time_ns()).encode()))

    def StreamingOutputCall(self, request, context):
        _echo_metadata(context)
        if _echo_status(request, context):
            return
        for params in request.response_parameters:
            if params.interval_us > 0:
                time.sleep(params.interval_us / 1e6)
            yield messages_pb2.StreamingOutputCallResponse(payload=_payload(params.size))

    def StreamingInputCall(self, request_iterator, context):
        _echo_metadata(context)
        total = 0
        for request in request_iterator:
            total += len(request.payload.body)
        return messages_pb2.StreamingInputCallResponse(aggregated_payload_size=total)

    def FullDuplexCall(self, request_iterator, context):
        _echo_metadata(context)
        for request in request_iterator:
            if _echo_status(request, context):
                return
            for params in request.response_parameters:
                if not context.is_active():
                    return
                if params.interval_us > 0:
                    time.sleep(params.interval_us / 1e6)
                yield messages_pb2.StreamingOutputCallResponse(payload=_payload(params.size))

    def HalfDuplexCall(self, request_iterator, context):
        _echo_metadata(context)
        requests = list(request_iterator)
        for request in requests:
            if _echo_status(request, context):
                return
            for params in request.response_parameters:
                if params.interval_us > 0:
                    time.sleep(params.interval_us / 1e6)
                yield messages_pb2.StreamingOutputCallResponse(payload=_payload(params.size))

    # UnimplementedCall: inherited, answers UNIMPLEMENTED.


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--use_tls", nargs="?", const="true", default="false")
    p.add_argument("--cert", default=None, help="PEM certificate (with --use_tls)")
    p.add_argument("--key", default=None, help="PEM private key (with --use_tls)")
    p.add_argument("--exit_on_stdin_close", action="store_true",
                   help="stop when stdin reaches EOF (so a test host that dies takes us with it)")
    args = p.parse_args()
    use_tls = args.use_tls.lower() in ("1", "true", "yes")

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    test_pb2_grpc.add_TestServiceServicer_to_server(TestService(), server)
    address = "127.0.0.1:%d" % args.port
    if use_tls:
        if not (args.cert and args.key):
            p.error("--use_tls needs --cert and --key")
        with open(args.key, "rb") as f:
            key = f.read()
        with open(args.cert, "rb") as f:
            cert = f.read()
        port = server.add_secure_port(address, grpc.ssl_server_credentials([(key, cert)]))
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        print("cannot listen on %s" % address, file=sys.stderr)
        return 1
    server.start()
    print("listening on %d" % port, flush=True)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.exit_on_stdin_close:
        threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    stop.wait()
    server.stop(grace=1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
