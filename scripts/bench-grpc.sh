#!/usr/bin/env bash
# gRPC unary calls through a proxy, side by side: HAProxy 2.6 (nbthread 1, h2c on both sides:
# `bind ... proto h2`, `server ... proto h2`), the same HAProxy writing a JSON access line per
# call to a file, and redline with all telemetry on (one worker; metrics, JSON access log
# written to a file, a span per call sampled at ratio 1.0 and exported over OTLP/HTTP to a local
# sink), plus the upstream alone ("direct") as the floor. The upstream is
# examples/grpc_health_upstream.rs (tonic-health's grpc.health.v1 on one thread); the load is
# `h2load -t1 -c$CONNS -m$STREAMS` (default 4 connections x 16 streams) sending
# grpc.health.v1.Health/Check with an empty HealthCheckRequest, in interleaved rounds.
#
# Prints medians: calls/s, h2load's p50/p99 call latency, the proxy's and the upstream's
# user+system microseconds per call (from /proc, the main figure on a small shared machine), the
# whole machine's (load generator and kernel included), then redline / HAProxy ratios.
# Every proxy is first checked to relay a real gRPC success (HTTP 200, SERVING in the body,
# `grpc-status: 0` in the trailers); each round fails loudly on a non-2xx or failed call, and
# on any call redline or the logging HAProxy recorded as failed (calls h2load abandoned when it
# stopped aside); redline's dropped spans, if any, are reported.
#   scripts/bench-grpc.sh [ROUNDS] [SECONDS]   (default 3 rounds of 8 s: about 3 minutes)
#   CONNS=1 STREAMS=100 scripts/bench-grpc.sh  (one client connection, 100 streams)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3} secs=${2:-8}
conns=${CONNS:-4} streams=${STREAMS:-16}
# shellcheck source=scripts/bench-tools.sh
source scripts/bench-tools.sh
need_tools haproxy curl
# h2load's Debian package is nghttp2-client (need_tools installs a package named as the tool).
command -v h2load >/dev/null || need_tools nghttp2-client
cargo build --release --locked --bin redline --example grpc_health_upstream
w=$(mktemp -d); pids=() pid=""
cleanup() { for p in "${pids[@]}" $pid; do kill "$p" 2>/dev/null || true; done; rm -rf "$w"; }
trap cleanup EXIT

up=18400 listen=18404 admin=18414 sink=18418
path=/grpc.health.v1.Health/Check
printf '\0\0\0\0\0' > "$w/check.req"   # gRPC frame: uncompressed, 0 bytes (HealthCheckRequest{})
grpc_headers=(-H 'content-type: application/grpc' -H 'te: trailers')

# write_ha_conf FILE [LOG]: HAProxy for gRPC on $listen, one thread; with LOG, a JSON access line
# per call on stdout (run in the foreground with stdout to a file).
write_ha_conf() {
  local log="" fmt
  # shellcheck disable=SC2016  # HAProxy's log-format variables, not the shell's
  fmt='{"time":"%tr","client":"%ci","method":"%HM","path":"%HPO","proto":"%HV","status":%ST,"bytes_in":%U,"bytes_out":%B,"duration_ms":%Ta,"upstream_ms":%Tr,"server":"%s","term":"%ts"}'
  [ -n "${2:-}" ] && log="  log stdout format raw local0
  log-format '$fmt'"
  cat > "$1" <<C
global
  nbthread 1
  maxconn 4096
defaults
  mode http
$log
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend fe
  bind 127.0.0.1:$listen proto h2
  default_backend app
backend app
  server s1 127.0.0.1:$up proto h2
C
}
write_ha_conf "$w/ha.cfg"
write_ha_conf "$w/ha-log.cfg" log
haproxy -c -q -f "$w/ha.cfg" && haproxy -c -q -f "$w/ha-log.cfg"

ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
hz=$(getconf CLK_TCK)

# grpc_ok PORT: one call answered as a real gRPC success: HTTP/2 200, the framed
# HealthCheckResponse{status: SERVING} (00 00000002 08 01), `grpc-status: 0` in the trailers.
grpc_ok() {
  local head body
  head=$(curl -sS --max-time 2 --http2-prior-knowledge "${grpc_headers[@]}" --data-binary @"$w/check.req" \
    -D - -o "$w/body" "http://127.0.0.1:$1$path" 2>/dev/null | tr -d '\r') || return 1
  body=$(od -An -tx1 "$w/body" | tr -d ' \n')
  grep -q '^HTTP/2 200' <<<"$head" && grep -qx 'grpc-status: 0' <<<"$head" && [ "$body" = 00000000020801 ]
}

./target/release/examples/grpc_health_upstream 127.0.0.1:$up & upstream=$!; pids+=("$upstream")
python3 scripts/otlp-sink.py $sink > "$w/sink.out" & pids+=($!)
for _ in $(seq 50); do grpc_ok $up && break; sleep 0.1; done
grpc_ok $up || { echo "the upstream did not answer a gRPC health check on $up" >&2; exit 1; }

# start NAME: starts the proxy NAME (sets $pid and $port) and checks that a call through it is
# a gRPC success.
start() {
  port=$listen
  case $1 in
    direct) pid=""; port=$up; return ;;
    haproxy) haproxy -f "$w/ha.cfg" -db > "$w/ha.out" 2>&1 & pid=$! ;;
    haproxy-log) : > "$w/ha-log.out"; haproxy -f "$w/ha-log.cfg" -db > "$w/ha-log.out" 2> "$w/ha.err" & pid=$! ;;
    redline-1) ./target/release/redline sidecar --service bench --service-version bench --workers 1 \
                 --listen 127.0.0.1:$listen --admin 127.0.0.1:$admin --upstream http://127.0.0.1:$up \
                 --tracing-endpoint http://127.0.0.1:$sink --tracing-sampler-ratio 1.0 > "$w/redline.out" 2>&1 & pid=$! ;;
  esac
  for _ in $(seq 100); do grpc_ok $listen && return; sleep 0.1; done
  echo "$1 did not relay a gRPC success on 127.0.0.1:$listen" >&2; exit 1
}

# stop NAME: checks what the proxy NAME itself recorded of the round, then stops it. Calls the
# client gave up on when h2load stopped (at most CONNS x STREAMS per h2load run: CANCELLED for
# redline, a termination state starting with C for HAProxy) are allowed; any other failure is not.
stop() {
  local allowed=$((2 * conns * streams)) m bad
  case $1 in
    direct) return ;;
    redline-1)
      m=$(curl -fsS "http://127.0.0.1:$admin/metrics")
      bad=$(awk -v allowed="$allowed" '
        /^rpc_server_call_duration_seconds_count/ && /rpc_response_status_code="CANCELLED"/ {c += $NF; next}
        /^rpc_server_call_duration_seconds_count/ && !/rpc_response_status_code="OK"/ {s += $NF}
        /^redline_log_lines_dropped_total/ {s += $NF}
        END {print s + (c > allowed ? c : 0)}' <<<"$m")
      [ "$bad" = 0 ] || { echo "redline-1: $bad calls not OK, or log lines dropped:" >&2
        grep -E '^(rpc_server_call_duration_seconds_count|redline_log_lines_dropped_total)' <<<"$m" >&2; exit 1; }
      # Spans the export queue had no room for are counted, not fatal: the table reports them.
      awk '/^redline_spans_(exported|dropped)_total/ {v[$1] = $NF}
           END {print v["redline_spans_exported_total"] + 0, v["redline_spans_dropped_total"] + 0}' <<<"$m" >> "$w/spans" ;;
    haproxy-log)
      bad=$(awk -v allowed="$allowed" '/"term":"C/ {c++; next} !/"status":200,.*"term":"--"/ {s++}
        END {print s + (c > allowed ? c : 0)}' "$w/ha-log.out")
      [ "$bad" = 0 ] || { echo "haproxy-log: $bad calls not 200 or not ended cleanly:" >&2
        grep -v '"status":200,.*"term":"--"' "$w/ha-log.out" | head -3 >&2; exit 1; } ;;
  esac
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""
}

load() { h2load -t1 -c"$conns" -m"$streams" -d "$w/check.req" "${grpc_headers[@]}" "$@" "http://127.0.0.1:$port$path"; }

targets=(direct haproxy haproxy-log redline-1)
for r in $(seq "$rounds"); do
  for t in "${targets[@]}"; do
    start "$t"
    load -D 1 > /dev/null
    p0=0; [ -n "$pid" ] && p0=$(ticks "$pid")
    u0=$(ticks "$upstream") m0=$(busy) t0=$(date +%s%N)
    rm -f "$w/lat"   # h2load appends to its --log-file
    out=$(load -D "$secs" --log-file "$w/lat") || true
    p1=0; [ -n "$pid" ] && p1=$(ticks "$pid")
    u1=$(ticks "$upstream") m1=$(busy) t1=$(date +%s%N)
    # "requests: N total, N started, N done, N succeeded, 0 failed, 0 errored, 0 timeout"
    read -r n bad < <(awk '/^requests:/ {print $8, $10 + $12 + $14}' <<<"$out")
    ok=$(awk '/^status codes:/ {print $3}' <<<"$out")
    if [ "$bad" != 0 ] || [ "$ok" != "$n" ] || [ "$n" -eq 0 ]; then echo "$t round $r: calls failed:" >&2; echo "$out" >&2; exit 1; fi
    pct=$(cut -f3 "$w/lat" | sort -n | awk '{v[NR] = $1} END {print v[int(NR * 0.5) + 1] / 1000, v[int(NR * 0.99) + 1] / 1000}')
    proxy=$((p1 - p0)); [ -n "$pid" ] || proxy=-
    echo "$t $n $pct $proxy $((u1 - u0)) $((m1 - m0)) $(((t1 - t0) / 1000000))" >> "$w/rows"
    stop "$t"
    echo "round $r $t: $n calls" >&2
  done
done
python3 - "$w/rows" "$w/spans" "$secs" "$hz" "$(nproc)" "$conns" "$streams" <<'PY'
import statistics, sys
rows, spans, secs, hz, cpus, conns, streams = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7]
by = {}
for line in open(rows):
    t, n, p50, p99, p, u, m, ms = line.split()
    n = int(n)
    us = lambda ticks: None if ticks == "-" else int(ticks) * 1e6 / hz / n
    by.setdefault(t, []).append((n / secs, float(p50), float(p99), us(p), us(u), us(m), int(m) / hz / (int(ms) / 1000) / cpus * 100))
med = {t: [None if col[0] is None else statistics.median(col) for col in zip(*vals)] for t, vals in by.items()}
print(f"gRPC unary grpc.health.v1.Health/Check, h2load -c{conns} -m{streams}, {len(next(iter(by.values())))} rounds of {secs:g} s, medians")
print(f"{'target':12} {'calls/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'proxy us/call':>14} {'upstream us/call':>17} {'machine us/call':>16} {'busy %':>7}")
for t, v in med.items():
    proxy = "-" if v[3] is None else f"{v[3]:.1f}"
    print(f"{t:12} {v[0]:>8,.0f} {v[1]:>7.2f} {v[2]:>7.2f} {proxy:>14} {v[4]:>17.1f} {v[5]:>16.1f} {v[6]:>7.0f}")
exported = dropped = 0
for line in open(spans):
    e, d = map(int, line.split()); exported += e; dropped += d
print(f"redline-1 spans: {exported:,} exported, {dropped:,} dropped ({dropped / max(exported + dropped, 1):.2%}; default 2048-span queue)")
r = med["redline-1"]
for ha in ("haproxy", "haproxy-log"):
    h = med[ha]
    print(f"redline-1 / {ha:11}: proxy CPU per call {r[3] / h[3]:.2f}x, calls/s {r[0] / h[0]:.2f}x, p99 {r[2] / h[2]:.2f}x")
PY
