#!/usr/bin/env bash
# CPU time per proxied request, from /proc, for HAProxy (nbthread 1, Prometheus exporter on),
# examples/floor_proxy.rs (tokio's floor, one worker) and redline with all telemetry on (one
# worker, and the default), each behind the same nginx upstream under the same `wrk -t1 -c32`
# load, in interleaved rounds. Prints medians: req/s, the proxy's and the upstream's user+system
# microseconds per request, and the whole machine's (load generator and kernel included).
#   scripts/bench-proxy-cpu.sh [ROUNDS] [SECONDS]   (default 3 rounds of 6 s)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3} secs=${2:-6}
source scripts/bench-tools.sh
need_tools nginx haproxy wrk
cargo build --release --locked --bin redline --example floor_proxy
w=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f $w/up.pid ] && kill "$(cat $w/up.pid)" 2>/dev/null; [ -f $w/ha.pid ] && kill "$(cat $w/ha.pid)" 2>/dev/null
  rm -rf "$w"; }
trap cleanup EXIT
write_upstream_conf $w 18280
write_haproxy_conf $w 18284 18283 18280
nginx -c $w/up.conf
python3 scripts/otlp-sink.py 18318 > $w/sink.out & pids+=($!)
for _ in $(seq 50); do [ -s $w/up.pid ] && break; sleep 0.1; done
upstream=$(pgrep -P "$(cat $w/up.pid)" | head -1)

ticks() { awk '{print $14 + $15}' /proc/$1/stat; }
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
hz=$(getconf CLK_TCK)

# start NAME: starts the proxy NAME on 127.0.0.1:18284 and waits until it answers.
start() {
  case $1 in
    haproxy) rm -f $w/ha.pid; haproxy -f $w/ha.cfg -D -p $w/ha.pid; for _ in $(seq 50); do [ -s $w/ha.pid ] && break; sleep 0.1; done
             pid=$(cat $w/ha.pid) ;;
    floor) ./target/release/examples/floor_proxy 127.0.0.1:18284 127.0.0.1:18280 1 & pid=$! ;;
    redline-1|redline) [ "$1" = redline-1 ] && export REDLINE_WORKERS=1 || unset REDLINE_WORKERS
             ./target/release/redline sidecar --service bench --service-version bench \
               --listen 127.0.0.1:18284 --admin 127.0.0.1:18294 --upstream http://127.0.0.1:18280 --routes / \
               --tracing-endpoint http://127.0.0.1:18318 --tracing-sampler-ratio 1.0 > $w/redline.out 2>&1 & pid=$! ;;
  esac
  for _ in $(seq 100); do curl -fs -o /dev/null http://127.0.0.1:18284/ && return; sleep 0.1; done
  echo "$1 did not answer on 127.0.0.1:18284" >&2; exit 1
}

targets=(haproxy floor redline-1 redline)
for r in $(seq "$rounds"); do
  for t in "${targets[@]}"; do
    start $t
    wrk -t1 -c32 -d1s http://127.0.0.1:18284/ > /dev/null
    p0=$(ticks $pid) u0=$(ticks $upstream) m0=$(busy)
    out=$(wrk -t1 -c32 -d${secs}s http://127.0.0.1:18284/)
    p1=$(ticks $pid) u1=$(ticks $upstream) m1=$(busy)
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    echo "$t $n $((p1 - p0)) $((u1 - u0)) $((m1 - m0))" >> $w/rows
    kill $pid; wait $pid 2>/dev/null || true
  done
done
python3 - $w/rows "$secs" "$hz" "$(nproc)" <<'PY'
import statistics, sys
rows, secs, hz, cpus = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
by = {}
for line in open(rows):
    t, n, p, u, m = line.split()
    n = int(n)
    us = lambda ticks: int(ticks) * 1e6 / hz / n
    by.setdefault(t, []).append((n / secs, us(p), us(u), us(m), int(m) / hz / secs / cpus * 100))
print(f"{'target':10} {'req/s':>8} {'proxy us/req':>13} {'upstream us/req':>16} {'machine us/req':>15} {'busy %':>7}")
for t, vals in by.items():
    med = [statistics.median(col) for col in zip(*vals)]
    print(f"{t:10} {med[0]:>8,.0f} {med[1]:>13.1f} {med[2]:>16.1f} {med[3]:>15.1f} {med[4]:>7.0f}")
PY
