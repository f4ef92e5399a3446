#!/usr/bin/env python3
"""A minimal OTLP/HTTP trace sink for benchmarks: accepts POST /v1/traces, answers 200 with an
empty ExportTraceServiceResponse, and counts requests and bytes (printed on exit).
The test suite decodes spans with the official protobufs; this only has to keep up.

usage: otlp-sink.py PORT
"""
import signal
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

stats = {"requests": 0, "bytes": 0}


class Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        stats["requests"] += 1
        stats["bytes"] += len(body)
        status = 200 if self.path == "/v1/traces" else 404
        self.send_response(status)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Sink)

    def stop(*_):
        print(f"otlp-sink: {stats['requests']} exports, {stats['bytes']} bytes", flush=True)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    server.serve_forever()


if __name__ == "__main__":
    main()
