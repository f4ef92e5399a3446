#!/usr/bin/env bash
# Proxy throughput side by side: direct, nginx, HAProxy, Caddy and redline with all telemetry
# on (metrics, JSON access log written to a file, traces sampled at ratio 1.0 and exported over
# OTLP/HTTP to a local sink) in one run of the peers harness named by $PROXY_PEERS.
#   scripts/bench-proxy.sh [proxy-peers.sh options, e.g. -r 5 -d 10]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-tools.sh
peers=$(peers_script)
need_tools nginx haproxy caddy wrk
cargo build --release --locked
python3 scripts/otlp-sink.py 18318 & sink=$!
trap 'kill $sink 2>/dev/null' EXIT
bash "$peers" "$@" -- ./target/release/redline sidecar --service bench --service-version bench \
  --listen 127.0.0.1:18084 --admin 127.0.0.1:18094 --upstream http://127.0.0.1:18080 --routes / \
  --tracing-endpoint http://127.0.0.1:18318 --tracing-sampler-ratio 1.0
