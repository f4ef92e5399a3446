#!/usr/bin/env bash
# User-space CPU instructions per proxied request, counted by valgrind's callgrind: redline with
# all telemetry on (metrics, JSON access log to a file, traces at ratio 1.0 to the OTLP sink),
# HAProxy (nbthread 1, Prometheus exporter on) and examples/floor_proxy.rs (tokio's floor, no
# telemetry), each behind the same nginx upstream and the same `wrk -t1 -c8` load. Instruction
# counts do not depend on what else the machine is doing, so this tells a real change from
# noise where req/s cannot; kernel time is not counted.
#   scripts/bench-proxy-instructions.sh [SECONDS]   (default 15)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
source scripts/bench-tools.sh
need_tools nginx haproxy wrk valgrind
cargo build --release --locked --bin redline --example floor_proxy
w=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f $w/up.pid ] && kill "$(cat $w/up.pid)" 2>/dev/null; rm -rf "$w"; }
trap cleanup EXIT
write_upstream_conf $w 18180
write_haproxy_conf $w 18184 18183 18180
nginx -c $w/up.conf
python3 scripts/otlp-sink.py 18318 > $w/sink.out & pids+=($!)

# measure NAME -- CMD...: runs CMD under callgrind (it must proxy 127.0.0.1:18184), warms it up,
# counts instructions over $secs seconds of load and prints them per request and per thread.
measure() {
  local name=$1; shift; [ "$1" = "--" ] && shift
  valgrind --tool=callgrind --separate-threads=yes --dump-instr=no \
    --callgrind-out-file=$w/cg.$name "$@" > $w/$name.out 2>&1 & local pid=$!; pids+=($pid)
  for _ in $(seq 300); do curl -fs -o /dev/null http://127.0.0.1:18184/ && break; sleep 0.2; done
  wrk -t1 -c8 -d3s http://127.0.0.1:18184/ > /dev/null
  callgrind_control -z $pid > /dev/null 2>&1
  local n; n=$(wrk -t1 -c8 -d${secs}s http://127.0.0.1:18184/ | awk '/requests in/ {print $1}')
  callgrind_control -d $pid > /dev/null 2>&1
  kill $pid; wait $pid 2>/dev/null || true
  python3 - "$name" "$n" $w/cg.$name <<'PY'
import glob, re, sys
name, n, base = sys.argv[1], int(sys.argv[2]), sys.argv[3]
threads = []
for f in sorted(glob.glob(base + "*")):
    text = open(f, errors="replace").read()
    if not re.search(r"^desc: Trigger: (dump|Client Request)", text, re.M):
        continue  # the dump at exit, after the measured window
    total = int(re.search(r"^totals: (\d+)", text, re.M).group(1))
    thread = re.search(r"^thread: (\d+)", text, re.M)
    threads.append((thread.group(1) if thread else "1", total))
busy = [(t, v) for t, v in threads if v / n >= 100]
print(f"{name:8} {sum(v for _, v in threads) / n:>9,.0f} instructions/request over {n:,} requests"
      + ("" if len(busy) < 2 else "  (threads: " + ", ".join(f"{v / n:,.0f}" for _, v in busy) + ")"))
PY
}

measure redline -- ./target/release/redline sidecar --service bench --service-version bench \
  --listen 127.0.0.1:18184 --admin 127.0.0.1:18194 --upstream http://127.0.0.1:18180 --routes / \
  --tracing-endpoint http://127.0.0.1:18318 --tracing-sampler-ratio 1.0
measure haproxy -- haproxy -f $w/ha.cfg
measure floor -- ./target/release/examples/floor_proxy 127.0.0.1:18184 127.0.0.1:18180 1
