"""A real gRPC client (grpcio from PyPI) for redline's proxy tests.

Calls server.py's `redline.test.Echo` methods (and the standard health service) over a plain
insecure channel (HTTP/2 with prior knowledge, as grpcio does), with generic calls and no
serializers, so messages are raw bytes. Prints ONE JSON object on stdout and exits 0,
whatever the RPC's status; only a harness failure (bad arguments, a bug) exits non-zero.

Usage: client.py --target HOST:PORT [--metadata k=v]... [--timeout SECONDS] SCENARIO ARGS...
  unary PAYLOAD                  /redline.test.Echo/Unary
  raw METHOD PAYLOAD             any unary method path, e.g. /redline.test.Echo/Unary
  fail SPEC                      /Fail with SPEC `CODE[:message]`
  fail-after-message SPEC        /FailAfterMessage (one message, then the status)
  sleep MS                       /Sleep (use --timeout for a deadline)
  server-stream COUNT SIZE       /ServerStream; counts messages and bytes without keeping them
  client-stream COUNT SIZE       /ClientStream; sends COUNT messages of SIZE bytes
  bidi COUNT SIZE [--concurrent] /Bidi; by default lockstep (message i+1 is sent only after
                                 the echo of message i arrived), --concurrent sends freely
  health [SERVICE]               grpc.health.v1.Health/Check

JSON fields, every scenario:
  scenario, code (a grpc.StatusCode name, e.g. "OK", "NOT_FOUND"), details (str or null),
  initial_metadata, trailing_metadata ({key: value}; repeated keys joined by ", ";
  `-bin` values base64), messages and bytes (response messages / bytes received),
  elapsed_ms (int, the call's wall time)
plus
  unary, raw, fail, sleep, fail-after-message, client-stream:
      response (the first response message as UTF-8, or base64 when it is not UTF-8; null
      when none came) and response_encoding ("utf8", "base64" or null)
  client-stream, bidi: sent_messages, sent_bytes
  bidi: mismatches (echoes that differ from what was sent)
  health: status (e.g. "SERVING", "NOT_SERVING"; null on error)
"""

import argparse
import base64
import json
import sys
import threading
import time

import grpc

SERVICE = "/redline.test.Echo/"


def metadata_dict(metadata):
    out = {}
    for key, value in metadata or ():
        if isinstance(value, bytes):
            value = base64.b64encode(value).decode("ascii")
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


def encode_response(message):
    if message is None:
        return {"response": None, "response_encoding": None}
    try:
        return {"response": message.decode("utf-8"), "response_encoding": "utf8"}
    except UnicodeDecodeError:
        return {"response": base64.b64encode(message).decode("ascii"), "response_encoding": "base64"}


def call_fields(call):
    """code, details and metadata of a finished grpc.Call (or grpc.RpcError, which is one)."""
    code = call.code()
    return {
        "code": code.name if code is not None else None,
        "details": call.details() or None,
        "initial_metadata": metadata_dict(call.initial_metadata()),
        "trailing_metadata": metadata_dict(call.trailing_metadata()),
    }


def pattern(i, size):
    return bytes([i % 256]) * size


def run_unary(channel, method, payload, kw):
    try:
        response, call = channel.unary_unary(method).with_call(payload, **kw)
        out = call_fields(call)
    except grpc.RpcError as e:
        response, out = None, call_fields(e)
    out.update(encode_response(response))
    out["messages"] = 0 if response is None else 1
    out["bytes"] = 0 if response is None else len(response)
    return out


def run_server_stream(channel, method, payload, kw):
    call = channel.unary_stream(method)(payload, **kw)
    messages = total = 0
    first = None
    try:
        for message in call:
            if first is None:
                first = message
            messages += 1
            total += len(message)
    except grpc.RpcError:
        pass  # the call is finished: its status is read below
    out = call_fields(call)
    out.update(messages=messages, bytes=total)
    return out, first


def run_client_stream(channel, count, size, kw):
    requests = (pattern(i, size) for i in range(count))
    try:
        response, call = channel.stream_unary(SERVICE + "ClientStream").with_call(requests, **kw)
        out = call_fields(call)
    except grpc.RpcError as e:
        response, out = None, call_fields(e)
    out.update(encode_response(response))
    out.update(
        messages=0 if response is None else 1,
        bytes=0 if response is None else len(response),
        sent_messages=count,
        sent_bytes=count * size,
    )
    return out


def run_bidi(channel, count, size, concurrent, kw):
    echoed = threading.Semaphore(0)
    done = threading.Event()
    sent = [0, 0]

    def requests():
        for i in range(count):
            message = pattern(i, size)
            sent[0] += 1
            sent[1] += len(message)
            yield message
            if not concurrent:
                # Lockstep: wait for this message's echo before sending the next one.
                while not echoed.acquire(timeout=0.1):
                    if done.is_set():
                        return

    call = channel.stream_stream(SERVICE + "Bidi")(requests(), **kw)
    messages = total = mismatches = 0
    try:
        for message in call:
            if message != pattern(messages, size):
                mismatches += 1
            messages += 1
            total += len(message)
            echoed.release()
    except grpc.RpcError:
        pass
    finally:
        done.set()
    out = call_fields(call)
    out.update(messages=messages, bytes=total, sent_messages=sent[0], sent_bytes=sent[1], mismatches=mismatches)
    return out


def run_health(channel, service, kw):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    stub = health_pb2_grpc.HealthStub(channel)
    try:
        response, call = stub.Check.with_call(health_pb2.HealthCheckRequest(service=service), **kw)
        out = call_fields(call)
        out["status"] = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        out.update(messages=1, bytes=response.ByteSize())
    except grpc.RpcError as e:
        out = call_fields(e)
        out.update(status=None, messages=0, bytes=0)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", required=True, help="host:port")
    parser.add_argument("--metadata", action="append", default=[], help="request metadata k=v, repeatable")
    parser.add_argument("--timeout", type=float, default=None, help="deadline in seconds")
    parser.add_argument("--concurrent", action="store_true", help="bidi: do not wait for each echo")
    parser.add_argument("scenario")
    parser.add_argument("args", nargs="*")
    args = parser.parse_args()

    metadata = []
    for item in args.metadata:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--metadata wants k=v, got {item!r}")
        metadata.append((key.lower(), value.encode("utf-8") if key.endswith("-bin") else value))
    kw = {"metadata": metadata or None, "timeout": args.timeout}

    def want(n, usage):
        if len(args.args) != n:
            parser.error(f"usage: {args.scenario} {usage}")
        return args.args

    channel = grpc.insecure_channel(args.target)
    start = time.monotonic()
    scenario = args.scenario
    if scenario == "unary":
        (payload,) = want(1, "PAYLOAD")
        out = run_unary(channel, SERVICE + "Unary", payload.encode("utf-8"), kw)
    elif scenario == "raw":
        method, payload = want(2, "METHOD PAYLOAD")
        out = run_unary(channel, method, payload.encode("utf-8"), kw)
    elif scenario == "fail":
        (spec,) = want(1, "CODE[:message]")
        out = run_unary(channel, SERVICE + "Fail", spec.encode("utf-8"), kw)
    elif scenario == "sleep":
        (ms,) = want(1, "MS")
        out = run_unary(channel, SERVICE + "Sleep", str(int(ms)).encode("ascii"), kw)
    elif scenario == "fail-after-message":
        (spec,) = want(1, "CODE[:message]")
        out, first = run_server_stream(channel, SERVICE + "FailAfterMessage", spec.encode("utf-8"), kw)
        out.update(encode_response(first))
    elif scenario == "server-stream":
        count, size = want(2, "COUNT SIZE")
        out, _ = run_server_stream(channel, SERVICE + "ServerStream", f"{int(count)}:{int(size)}".encode(), kw)
    elif scenario == "client-stream":
        count, size = want(2, "COUNT SIZE")
        out = run_client_stream(channel, int(count), int(size), kw)
    elif scenario == "bidi":
        count, size = want(2, "COUNT SIZE")
        out = run_bidi(channel, int(count), int(size), args.concurrent, kw)
    elif scenario == "health":
        if len(args.args) > 1:
            parser.error("usage: health [SERVICE]")
        out = run_health(channel, args.args[0] if args.args else "", kw)
    else:
        parser.error(f"unknown scenario {scenario!r}")
    out["elapsed_ms"] = int((time.monotonic() - start) * 1000)
    out = {"scenario": scenario, **out}
    channel.close()
    print(json.dumps(out, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
