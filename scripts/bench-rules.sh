#!/usr/bin/env bash
# Rule evaluation cost, side by side: the sidecar evaluating the shipped symptom rules over its
# own series (retention 1h, series at the route cap of 500 routes) and a real Prometheus
# scraping the same sidecar and evaluating the same rule file at the same interval.
# Reports redline_rule_group_last_duration_seconds next to Prometheus's
# prometheus_rule_group_last_duration_seconds once the 5m windows are full.
#   scripts/bench-rules.sh [WARMUP_SECONDS (default 330)] [MEASURE_SECONDS (default 60)]
set -euo pipefail
cd "$(dirname "$0")/.."
warmup=${1:-330} measure=${2:-60}
source scripts/bench-tools.sh
need_tools prometheus nginx wrk
cargo build --release --locked -q
w=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$w/up.pid" ] && kill "$(cat "$w/up.pid")" 2>/dev/null; rm -rf "$w"; }
trap cleanup EXIT

# Upstream: 200 for every path, 500 under /fail/.
cat > "$w/up.conf" <<C
worker_processes 1; pid $w/up.pid; error_log $w/up.err; events { worker_connections 1024; }
http { access_log off; server { listen 127.0.0.1:18180;
  location / { return 200 "ok\n"; } location /fail/ { return 500 "failed\n"; } } }
C
nginx -c "$w/up.conf"

./target/release/redline sidecar --service bench --service-version 1 --namespace bench \
  --listen 127.0.0.1:18184 --admin 127.0.0.1:18194 --upstream http://127.0.0.1:18180 \
  --max-routes 500 --rules rules/redline-symptoms.yml --sample-interval 5s --retention 1h \
  --tracing-sampler-ratio 0 >/dev/null &
pids+=($!)

cat > "$w/prometheus.yml" <<C
global: {scrape_interval: 5s, evaluation_interval: 5s}
rule_files: [$PWD/rules/redline-symptoms.yml]
scrape_configs:
  - job_name: sidecar
    static_configs: [{targets: ["127.0.0.1:18194"]}]
C
prometheus --config.file="$w/prometheus.yml" --storage.tsdb.path="$w/tsdb" \
  --web.listen-address=127.0.0.1:18190 --log.level=warn 2>"$w/prometheus.log" &
pids+=($!)
for _ in $(seq 100); do curl -sf http://127.0.0.1:18194/readyz >/dev/null && curl -sf http://127.0.0.1:18190/-/ready >/dev/null && break; sleep 0.2; done

# 500 distinct routes (the route cap) and 1 request in 50 failing.
cat > "$w/routes.lua" <<'L'
local i = 0
request = function()
  i = i + 1
  if i % 50 == 0 then return wrk.format("GET", "/fail/x") end
  return wrk.format("GET", "/item-" .. (i % 500))
end
L
wrk -t1 -c2 -d$((warmup + measure))s -s "$w/routes.lua" http://127.0.0.1:18184/ >/dev/null &
pids+=($!)
echo "warming up for ${warmup}s so every 5m window is full..." >&2
sleep "$warmup"

ours=() theirs=()
for _ in $(seq $((measure / 5))); do
  ours+=("$(curl -s http://127.0.0.1:18194/metrics | awk '/^redline_rule_group_last_duration_seconds\{.*redline-symptoms"\}/ {print $2}')")
  theirs+=("$(curl -s http://127.0.0.1:18190/metrics | awk '/^prometheus_rule_group_last_duration_seconds\{.*;redline-symptoms"\}/ {print $2}')")
  sleep 5
done
series=$(curl -s http://127.0.0.1:18194/metrics | awk '/^redline_rule_store_series / {print $2}')
samples=$(curl -s http://127.0.0.1:18194/metrics | awk '/^redline_rule_store_samples / {print $2}')
routes=$(curl -s http://127.0.0.1:18194/metrics | grep -c '^http_server_request_duration_seconds_count{' || true)
rss=$(awk '/VmRSS/ {print $2}' "/proc/${pids[0]}/status")
python3 - "$series" "$samples" "$routes" "$rss" "${ours[*]}" "${theirs[*]}" <<'P'
import statistics, sys
series, samples, routes, rss = sys.argv[1:5]
ours = [float(x) * 1000 for x in sys.argv[5].split()]
theirs = [float(x) * 1000 for x in sys.argv[6].split()]
print(f"request-duration series (one per route/method/status): {routes}; rule store: {series} series, {samples} samples; sidecar RSS {int(rss)//1024} MiB")
print(f"{'evaluator':<12}{'median ms':>12}{'max ms':>10}  (group redline-symptoms, {len(ours)} readings)")
print(f"{'redline':<12}{statistics.median(ours):>12.3f}{max(ours):>10.3f}")
print(f"{'prometheus':<12}{statistics.median(theirs):>12.3f}{max(theirs):>10.3f}")
print(f"ratio redline/prometheus (median) {statistics.median(ours) / statistics.median(theirs):.2f}")
P
