#!/usr/bin/env bash
# Where tokio's floor lies in the same harness as scripts/bench-proxy.sh: runs
# examples/floor_proxy.rs (the least a tokio proxy can do per request: no telemetry, no header
# rewriting beyond X-Forwarded-For, Content-Length bodies only) inside
# the peers harness named by $PROXY_PEERS, beside direct, nginx, HAProxy and Caddy.
#   scripts/bench-proxy-floor.sh [proxy-peers.sh options, e.g. -r 5 -d 8]
#   FLOOR_WORKERS=2 scripts/bench-proxy-floor.sh ...   (default 1, like the single-threaded peers)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench-tools.sh
peers=$(peers_script)
need_tools nginx haproxy caddy wrk
cargo build --release --locked --example floor_proxy
bash "$peers" "$@" -- ./target/release/examples/floor_proxy 127.0.0.1:18084 127.0.0.1:18080 "${FLOOR_WORKERS:-1}"
