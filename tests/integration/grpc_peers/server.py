"""A real gRPC server (grpcio from PyPI) for redline's proxy tests.

Service `redline.test.Echo` is registered through generic handlers without protobuf code
generation, so every message is raw bytes. The standard health service
(`grpc.health.v1.Health`, from grpcio-health-checking) is registered beside it.

Usage: server.py --port N [--health SERVING|NOT_SERVING] [--exit-on-eof]
Binds 127.0.0.1:N (insecure, h2c) and prints `READY <port>` on stdout once serving.
With --exit-on-eof the server exits when its stdin closes, so a test process that dies
without killing it (its end of the pipe closes) leaves no server behind.

Methods (all under /redline.test.Echo/):
  Unary             echoes the request; initial metadata `x-echo-header: yes`, trailing
                    metadata `x-echo-trailer: <request length>`.
  Fail              request `CODE[:message]` (a grpc.StatusCode name, e.g. `NOT_FOUND:no such
                    thing`); aborts with it after setting trailing metadata `x-fail-detail:
                    <message>`. Nothing was sent, so grpcio answers trailers-only.
  FailAfterMessage  server streaming; request as for Fail; yields one message (`partial`),
                    then aborts, so the status comes in trailers after data.
  Sleep             request: ASCII milliseconds; sleeps that long while the call is active,
                    then echoes the request.
  ServerStream      request `count:size`; yields `count` messages of `size` bytes, message i
                    being bytes([i % 256]) * size, generated one at a time.
  ClientStream      consumes the request stream; answers `<messages>:<total bytes>`.
  Bidi              echoes each request message as it arrives.
"""

import argparse
import signal
import sys
import threading
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

SERVICE = "redline.test.Echo"


def parse_spec(request):
    """`CODE[:message]` -> (grpc.StatusCode, message)."""
    text = request.decode("utf-8")
    name, _, message = text.partition(":")
    try:
        code = grpc.StatusCode[name.strip()]
    except KeyError:
        code = grpc.StatusCode.INVALID_ARGUMENT
        message = f"unknown status code name {name!r}"
    return code, message


def unary(request, context):
    context.send_initial_metadata((("x-echo-header", "yes"),))
    context.set_trailing_metadata((("x-echo-trailer", str(len(request))),))
    return request


def fail(request, context):
    code, message = parse_spec(request)
    context.set_trailing_metadata((("x-fail-detail", message),))
    context.abort(code, message)


def fail_after_message(request, context):
    code, message = parse_spec(request)
    yield b"partial"
    context.set_trailing_metadata((("x-fail-detail", message),))
    context.abort(code, message)


def sleep(request, context):
    deadline = time.monotonic() + int(request.decode("ascii")) / 1000.0
    while context.is_active():
        left = deadline - time.monotonic()
        if left <= 0:
            break
        time.sleep(min(left, 0.01))
    return request


def server_stream(request, context):
    count, _, size = request.decode("ascii").partition(":")
    count, size = int(count), int(size)
    for i in range(count):
        if not context.is_active():
            return
        yield bytes([i % 256]) * size


def client_stream(request_iterator, context):
    messages = total = 0
    for message in request_iterator:
        messages += 1
        total += len(message)
    return f"{messages}:{total}".encode("ascii")


def bidi(request_iterator, context):
    for message in request_iterator:
        yield message


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--health", default="SERVING", choices=["SERVING", "NOT_SERVING"])
    parser.add_argument("--exit-on-eof", action="store_true")
    parser.add_argument("--workers", type=int, default=32)
    args = parser.parse_args()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers))
    handlers = {
        "Unary": grpc.unary_unary_rpc_method_handler(unary),
        "Fail": grpc.unary_unary_rpc_method_handler(fail),
        "FailAfterMessage": grpc.unary_stream_rpc_method_handler(fail_after_message),
        "Sleep": grpc.unary_unary_rpc_method_handler(sleep),
        "ServerStream": grpc.unary_stream_rpc_method_handler(server_stream),
        "ClientStream": grpc.stream_unary_rpc_method_handler(client_stream),
        "Bidi": grpc.stream_stream_rpc_method_handler(bidi),
    }
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))

    health_servicer = health.HealthServicer()
    overall = health_pb2.HealthCheckResponse.ServingStatus.Value(args.health)
    health_servicer.set("", overall)
    health_servicer.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)

    try:
        bound = server.add_insecure_port(f"127.0.0.1:{args.port}")
    except RuntimeError:  # newer grpcio raises where older ones returned 0
        bound = 0
    if bound == 0:
        print(f"cannot bind 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        sys.exit(1)
    server.start()
    print(f"READY {bound}", flush=True)

    # SIGTERM: a graceful stop, as an orchestrator asks for one: the server sends GOAWAY, takes
    # no new calls and lets the calls in flight finish (within 10 s).
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.stop, args=(10,), daemon=True).start())

    if args.exit_on_eof:
        def watch_stdin():
            sys.stdin.buffer.read()
            server.stop(0)

        threading.Thread(target=watch_stdin, daemon=True).start()
    server.wait_for_termination()


if __name__ == "__main__":
    main()
