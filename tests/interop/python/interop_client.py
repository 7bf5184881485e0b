#!/usr/bin/python3
"""grpcio interop client: runs one portable case of grpc's doc/interop-test-descriptions.md.

Usage: interop_client.py --server_host 127.0.0.1 --server_port N --test_case NAME
                         [--use_tls --ca_file PEM --server_host_override localhost]
Exit 0 on pass; non-zero with a message on stderr on failure.
"""
import argparse
import os
import queue
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "gen"))

import grpc  # noqa: E402

import empty_pb2  # noqa: E402
import messages_pb2  # noqa: E402
import test_pb2_grpc  # noqa: E402

TIMEOUT = 30.0  # seconds, per call (except timeout_on_sleeping_server)
INITIAL_KEY = "x-grpc-test-echo-initial"
INITIAL_VALUE = "test_initial_metadata_value"
TRAILING_KEY = "x-grpc-test-echo-trailing-bin"
TRAILING_VALUE = b"\xab\xab\xab"
SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"


class CaseFailed(Exception):
    pass


def check(cond, what):
    if not cond:
        raise CaseFailed(what)


def zeros(n):
    return messages_pb2.Payload(body=b"\x00" * n)


def check_body(payload, size, what):
    check(len(payload.body) == size, "%s: payload body is %d bytes, expected %d" % (what, len(payload.body), size))
    check(payload.body == b"\x00" * size, "%s: payload body is not all zeros" % what)


class Pipe:
    """A request iterator the test feeds one message at a time."""

    _END = object()

    def __init__(self):
        self._q = queue.Queue()

    def add(self, msg):
        self._q.put(msg)

    def close(self):
        self._q.put(self._END)

    def __iter__(self):
        return self

    def __next__(self):
        item = self._q.get()
        if item is self._END:
            raise StopIteration()
        return item


def expect_rpc_error(fn, code, what, details=None):
    try:
        fn()
    except grpc.RpcError as e:
        check(e.code() == code, "%s: status %s (%r), expected %s" % (what, e.code(), e.details(), code))
        if details is not None:
            check(e.details() == details, "%s: status message %r, expected %r" % (what, e.details(), details))
        return e
    raise CaseFailed("%s: call succeeded, expected %s" % (what, code))


def empty_unary(stub, channel):
    resp = stub.EmptyCall(empty_pb2.Empty(), timeout=TIMEOUT)
    check(isinstance(resp, empty_pb2.Empty), "response is not an Empty")


def large_unary(stub, channel):
    req = messages_pb2.SimpleRequest(response_size=314159, payload=zeros(271828))
    resp = stub.UnaryCall(req, timeout=TIMEOUT)
    check_body(resp.payload, 314159, "large_unary")


def client_streaming(stub, channel):
    sizes = [27182, 8, 1828, 45904]
    reqs = (messages_pb2.StreamingInputCallRequest(payload=zeros(n)) for n in sizes)
    resp = stub.StreamingInputCall(reqs, timeout=TIMEOUT)
    check(resp.aggregated_payload_size == 74922,
          "aggregated_payload_size %d, expected 74922" % resp.aggregated_payload_size)


def server_streaming(stub, channel):
    sizes = [31415, 9, 2653, 58979]
    req = messages_pb2.StreamingOutputCallRequest(
        response_parameters=[messages_pb2.ResponseParameters(size=n) for n in sizes])
    got = list(stub.StreamingOutputCall(req, timeout=TIMEOUT))
    check(len(got) == 4, "received %d responses, expected 4" % len(got))
    for i, (resp, n) in enumerate(zip(got, sizes)):
        check_body(resp.payload, n, "response %d" % i)


def ping_pong(stub, channel):
    req_sizes = [27182, 8, 1828, 45904]
    resp_sizes = [31415, 9, 2653, 58979]
    pipe = Pipe()
    responses = stub.FullDuplexCall(pipe, timeout=TIMEOUT)
    try:
        for i, (rq, rs) in enumerate(zip(req_sizes, resp_sizes)):
            pipe.add(messages_pb2.StreamingOutputCallRequest(
                response_parameters=[messages_pb2.ResponseParameters(size=rs)], payload=zeros(rq)))
            resp = next(responses, None)
            check(resp is not None, "stream ended after %d responses, expected 4" % i)
            check_body(resp.payload, rs, "response %d" % i)
    finally:
        pipe.close()
    rest = list(responses)
    check(not rest, "received %d responses after the 4th" % len(rest))


def empty_stream(stub, channel):
    got = list(stub.FullDuplexCall(iter(()), timeout=TIMEOUT))
    check(len(got) == 0, "received %d responses, expected 0" % len(got))


def _check_metadata(initial, trailing, what):
    initial = list(initial or ())
    trailing = list(trailing or ())
    check((INITIAL_KEY, INITIAL_VALUE) in initial,
          "%s: initial metadata %r lacks %s=%s" % (what, initial, INITIAL_KEY, INITIAL_VALUE))
    check((TRAILING_KEY, TRAILING_VALUE) in trailing,
          "%s: trailing metadata %r lacks %s=0xababab" % (what, trailing, TRAILING_KEY))


def custom_metadata(stub, channel):
    md = ((INITIAL_KEY, INITIAL_VALUE), (TRAILING_KEY, TRAILING_VALUE))
    req = messages_pb2.SimpleRequest(response_size=314159, payload=zeros(271828))
    resp, call = stub.UnaryCall.with_call(req, metadata=md, timeout=TIMEOUT)
    check_body(resp.payload, 314159, "UnaryCall")
    _check_metadata(call.initial_metadata(), call.trailing_metadata(), "UnaryCall")

    dreq = messages_pb2.StreamingOutputCallRequest(
        response_parameters=[messages_pb2.ResponseParameters(size=314159)], payload=zeros(271828))
    responses = stub.FullDuplexCall(iter([dreq]), metadata=md, timeout=TIMEOUT)
    got = list(responses)
    check(len(got) == 1, "FullDuplexCall: received %d responses, expected 1" % len(got))
    check_body(got[0].payload, 314159, "FullDuplexCall")
    check(responses.code() == grpc.StatusCode.OK, "FullDuplexCall: status %s" % responses.code())
    _check_metadata(responses.initial_metadata(), responses.trailing_metadata(), "FullDuplexCall")


def status_code_and_message(stub, channel):
    msg = "test status message"
    status = messages_pb2.EchoStatus(code=2, message=msg)
    expect_rpc_error(lambda: stub.UnaryCall(messages_pb2.SimpleRequest(response_status=status), timeout=TIMEOUT),
                     grpc.StatusCode.UNKNOWN, "UnaryCall", msg)
    req = messages_pb2.StreamingOutputCallRequest(response_status=status)
    expect_rpc_error(lambda: list(stub.FullDuplexCall(iter([req]), timeout=TIMEOUT)),
                     grpc.StatusCode.UNKNOWN, "FullDuplexCall", msg)


def special_status_message(stub, channel):
    status = messages_pb2.EchoStatus(code=2, message=SPECIAL_MESSAGE)
    expect_rpc_error(lambda: stub.UnaryCall(messages_pb2.SimpleRequest(response_status=status), timeout=TIMEOUT),
                     grpc.StatusCode.UNKNOWN, "UnaryCall", SPECIAL_MESSAGE)


def _empty_call(channel, path):
    return channel.unary_unary(path, request_serializer=empty_pb2.Empty.SerializeToString,
                               response_deserializer=empty_pb2.Empty.FromString)


def unimplemented_method(stub, channel):
    call = _empty_call(channel, "/grpc.testing.TestService/UnimplementedCall")
    expect_rpc_error(lambda: call(empty_pb2.Empty(), timeout=TIMEOUT), grpc.StatusCode.UNIMPLEMENTED,
                     "TestService/UnimplementedCall")


def unimplemented_service(stub, channel):
    ustub = test_pb2_grpc.UnimplementedServiceStub(channel)
    expect_rpc_error(lambda: ustub.UnimplementedCall(empty_pb2.Empty(), timeout=TIMEOUT),
                     grpc.StatusCode.UNIMPLEMENTED, "UnimplementedService/UnimplementedCall")


def cancel_after_begin(stub, channel):
    pipe = Pipe()
    future = stub.StreamingInputCall.future(pipe, timeout=TIMEOUT)
    future.cancel()
    pipe.close()
    check(future.cancelled(), "future was not cancelled")
    check(future.code() == grpc.StatusCode.CANCELLED, "status %s, expected CANCELLED" % future.code())


def cancel_after_first_response(stub, channel):
    pipe = Pipe()
    responses = stub.FullDuplexCall(pipe, timeout=TIMEOUT)
    pipe.add(messages_pb2.StreamingOutputCallRequest(
        response_parameters=[messages_pb2.ResponseParameters(size=31415)], payload=zeros(27182)))
    first = next(responses)
    check_body(first.payload, 31415, "first response")
    responses.cancel()
    pipe.close()
    expect_rpc_error(lambda: next(responses), grpc.StatusCode.CANCELLED, "after cancel")


def timeout_on_sleeping_server(stub, channel):
    pipe = Pipe()
    responses = stub.FullDuplexCall(pipe, timeout=0.001)
    pipe.add(messages_pb2.StreamingOutputCallRequest(payload=zeros(27182)))
    try:
        expect_rpc_error(lambda: next(responses), grpc.StatusCode.DEADLINE_EXCEEDED, "FullDuplexCall")
    finally:
        pipe.close()


CASES = {f.__name__: f for f in (
    empty_unary, large_unary, client_streaming, server_streaming, ping_pong, empty_stream,
    custom_metadata, status_code_and_message, special_status_message, unimplemented_method,
    unimplemented_service, cancel_after_begin, cancel_after_first_response, timeout_on_sleeping_server)}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--server_host", default="127.0.0.1")
    p.add_argument("--server_port", type=int, required=True)
    p.add_argument("--server_host_override", default=None)
    p.add_argument("--test_case", required=True, choices=sorted(CASES))
    p.add_argument("--use_tls", nargs="?", const="true", default="false")
    p.add_argument("--ca_file", default=None)
    args = p.parse_args()
    use_tls = args.use_tls.lower() in ("1", "true", "yes")
    target = "%s:%d" % (args.server_host, args.server_port)
    if use_tls:
        if not args.ca_file:
            p.error("--use_tls needs --ca_file")
        with open(args.ca_file, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        options = []
        if args.server_host_override:
            options.append(("grpc.ssl_target_name_override", args.server_host_override))
        channel = grpc.secure_channel(target, creds, options=options)
    else:
        channel = grpc.insecure_channel(target)
    try:
        with channel:
            CASES[args.test_case](test_pb2_grpc.TestServiceStub(channel), channel)
    except CaseFailed as e:
        print("FAIL %s: %s" % (args.test_case, e), file=sys.stderr)
        return 1
    except grpc.RpcError as e:
        print("FAIL %s: unexpected RPC error %s: %r" % (args.test_case, e.code(), e.details()), file=sys.stderr)
        return 1
    print("PASS %s" % args.test_case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
