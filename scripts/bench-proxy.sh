#!/usr/bin/env bash
# Latency added by each proxy at a fixed moderate rate, and its throughput, side by side with
# the peers, self-contained: one nginx upstream (answering 20 bytes) reached directly and
# through HAProxy (nbthread 1), nginx (one worker, keep-alive pool), examples/floor_proxy.rs
# (one worker) and redline with its default worker count and all telemetry on (RED metrics,
# JSON access log to a file, a span per request at ratio 1.0 exported over OTLP/HTTP to
# scripts/otlp-sink.py). Interleaved rounds (each starts one target later than the last); per
# round and target:
#   latency:    `oha -q RATE -z SECONDS -c 16 --latency-correction` (open-loop: a slow answer
#               delays no later request, so queueing shows in the percentiles)
#   throughput: `wrk -t1 -c32 -d SECONDS`
# Prints medians of p50, p99, p99.9 and req/s, and each proxy's p99 added over direct, against
# redline's target (<= 0.5 ms at 5,000 req/s). Fails on any non-2xx answer or socket error.
#   scripts/bench-proxy.sh [ROUNDS] [SECONDS] [RATE]   (default 3 rounds of 8 s at 5000 req/s)
# oha comes from crates.io: `cargo install oha --locked` (the script installs it when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3} secs=${2:-8} rate=${3:-5000}
# shellcheck source=scripts/bench-tools.sh
source scripts/bench-tools.sh
need_tools nginx haproxy wrk curl
command -v oha >/dev/null || cargo install oha --locked
cargo build --release --locked --bin redline --example floor_proxy
bench_workdir

up=18380 listen=18384 stats=18383 admin=18394 sink=18418
write_upstream_conf "$w" $up
write_haproxy_conf "$w" $listen $stats $up
write_nginx_proxy_conf "$w" $listen $up
nginx -c "$w/up.conf" -e "$w/up.err"
python3 scripts/otlp-sink.py $sink > "$w/sink.out" & pids+=($!)
for _ in $(seq 50); do curl -fs -o /dev/null http://127.0.0.1:$up/ && break; sleep 0.1; done

# measure NAME PORT: one latency step and one throughput step against 127.0.0.1:PORT; appends
# "round name p50 p99 p999 req/s" to $w/rows, or fails on any failed request.
measure() {
  local name=$1 url=http://127.0.0.1:$2/ out
  wrk -t1 -c32 -d1s "$url" > /dev/null
  oha -q "$rate" -z "${secs}s" -c 16 --latency-correction --no-tui --output-format json "$url" > "$w/oha.json"
  out=$(wrk -t1 -c32 -d"${secs}s" "$url")
  if grep -qE 'Non-2xx|Socket errors' <<<"$out" || ! grep -q 'requests in' <<<"$out"; then
    echo "$name: failed requests under wrk:" >&2; echo "$out" >&2; exit 1
  fi
  python3 - "$name" "$w/oha.json" "$(awk '/requests in/ {print $1}' <<<"$out")" "$secs" "$r" >> "$w/rows" <<'PY'
import json, sys
name, path, n, secs, r = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
d = json.load(open(path))
codes = d["statusCodeDistribution"]
# oha stops at the deadline with a few requests in flight: those are not failures.
errors = {k: v for k, v in d["errorDistribution"].items() if "deadline" not in k}
if set(codes) != {"200"} or errors:
    sys.exit(f"{name}: oha saw status codes {codes} and errors {errors}")
p = d["latencyPercentiles"]
print(r, name, p["p50"] * 1e3, p["p99"] * 1e3, p["p99.9"] * 1e3, d["summary"]["requestsPerSec"], n / secs)
PY
  echo "round $r $name done" >&2
}

targets=(direct haproxy nginx floor redline-auto)
for r in $(seq "$rounds"); do
  for i in $(seq 0 $((${#targets[@]} - 1))); do
    t=${targets[$(((i + r - 1) % ${#targets[@]}))]}
    if [ "$t" = direct ]; then measure direct $up; continue; fi
    start_proxy "$t"
    measure "$t" $listen
    kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
  done
done

python3 - "$w/rows" "$rate" "$secs" "$(nproc)" <<'PY'
import statistics, sys
rows, rate, secs, cpus = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
by, per_round = {}, {}
for line in open(rows):
    r, t, *v = line.split()
    v = [float(x) for x in v]
    by.setdefault(t, []).append(v)
    per_round.setdefault(r, {})[t] = v
med = {t: [statistics.median(c) for c in zip(*vals)] for t, vals in by.items()}
print(f"latency: oha -q {rate} -c 16 --latency-correction; throughput: wrk -t1 -c32; "
      f"{len(per_round)} interleaved rounds of {secs:g} s, medians; {cpus} CPUs shared by all")
print(f"{'target':13} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9} {'oha req/s':>10} {'p99 added ms':>13} {'wrk req/s':>10}")
for t, (p50, p99, p999, orps, wrps) in med.items():
    added = "-" if t == "direct" else f"{p99 - med['direct'][1]:.3f}"
    print(f"{t:13} {p50:>8.3f} {p99:>8.3f} {p999:>9.3f} {orps:>10,.0f} {added:>13} {wrps:>10,.0f}")
added = sorted(pr["redline-auto"][1] - pr["direct"][1] for pr in per_round.values())
m = med["redline-auto"][1] - med["direct"][1]
print(f"\nredline p99 added over direct at {rate} req/s: {m:.3f} ms (rounds {added[0]:.3f} to {added[-1]:.3f}); "
      f"target <= 0.5 ms: {'met' if m <= 0.5 else 'NOT met'}")
for peer in ("haproxy", "nginx", "floor"):
    print(f"redline / {peer:8}: req/s {med['redline-auto'][4] / med[peer][4]:.2f}x")
PY
