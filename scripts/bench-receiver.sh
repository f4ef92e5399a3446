#!/usr/bin/env bash
# Receiver throughput: webhook deliveries per second (10 alerts each, every one durably
# committed before its 200) and latency percentiles, against SQLite and PostgreSQL, with wrk
# posting a distinct Alertmanager v4 payload per request (scripts/bench-receiver.lua inline).
# Usage: scripts/bench-receiver.sh [seconds] [connections]   (needs wrk, postgresql, curl)
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${1:-10}
CONNS=${2:-64}
TARGET=${CARGO_TARGET_DIR:-target}

for tool in wrk curl; do
  command -v $tool >/dev/null || { echo "$tool is missing: apt-get install -y $tool" >&2; exit 1; }
done
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$PGBIN/initdb" ] || { echo "PostgreSQL is missing: apt-get install -y postgresql" >&2; exit 1; }

# REDLINE_BIN: a prebuilt binary to measure instead of building target/release/redline.
if [ -n "${REDLINE_BIN:-}" ]; then BIN=$REDLINE_BIN; else
  cargo build --release --locked --quiet
  BIN="$TARGET/release/redline"
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ -d "$WORK/pg" ]; then as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m immediate stop >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

echo -n "bench-token" > "$WORK/token"
cat > "$WORK/post.lua" <<'LUA'
-- A distinct webhook payload per request: groupKey and startsAt carry a per-run, per-thread
-- counter, so every delivery is new (none is a duplicate). With args[2] = G > 0 the alerts
-- come from a fixed population of G groups x 10 alerts (as with Alertmanager, the same alerts
-- are notified again and again, each time with a new state); with G = 0 every alert is new.
-- `tid` is a global that setup() sets in each thread's Lua state.
local counter = 0
local threads = 0
local run = "r"
local groups = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function init(args)
  run = args[1] or "r"
  groups = tonumber(args[2] or "0")
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-token"
function request()
  counter = counter + 1
  local id = run .. "-" .. tid .. "-" .. counter
  local group = id
  if groups > 0 then group = tostring((counter * 7919 + tid * 104729) % groups) end
  local starts = string.format("2024-05-01T10:00:00.%09dZ", (tid * 100000000 + counter) % 1000000000)
  local alerts = {}
  for k = 1, 10 do
    alerts[k] = string.format(
      '{"status":"firing","labels":{"alertname":"BenchAlert","service":"bench-%s","severity":"warning","k":"%d"},' ..
      '"annotations":{"summary":"benchmark alert %d","runbook_url":"https://runbooks.example/bench"},' ..
      '"startsAt":"%s","endsAt":"0001-01-01T00:00:00Z",' ..
      '"generatorURL":"http://prometheus:9090/graph?g0.expr=up"}', group, k, k, starts)
  end
  local body = string.format(
    '{"version":"4","groupKey":"{}:{delivery=\\"%s\\"}","truncatedAlerts":0,"status":"firing","receiver":"redline",' ..
    '"groupLabels":{"service":"bench-%s"},"commonLabels":{"service":"bench-%s"},"commonAnnotations":{},' ..
    '"externalURL":"http://alertmanager:9093","alerts":[%s]}', id, group, group, table.concat(alerts, ","))
  return wrk.format(nil, nil, nil, body)
end
LUA

metric() { curl -s "http://$ADDR/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

run_one() {
  local name=$1 db=$2 groups=$3
  local port; port=$(free_port)
  ADDR="127.0.0.1:$port"
  "$BIN" receiver --listen "$ADDR" --db "$db" --bearer-token-file "$WORK/token" --log-level warn \
    > "$WORK/${name//\//-}.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 1 200); do curl -sf "http://$ADDR/readyz" >/dev/null && break; sleep 0.05; done
  curl -sf "http://$ADDR/readyz" >/dev/null || { echo "receiver ($name) did not start:"; cat "$WORK/${name//\//-}.log"; exit 1; }
  wrk -t2 -c"$CONNS" -d2s -s "$WORK/post.lua" "http://$ADDR/api/v1/alertmanager" -- warmup "$groups" >/dev/null
  local before; before=$(metric redline_receiver_notifications_stored_total)
  local commits0; commits0=$(metric redline_receiver_commits_total)
  wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -s "$WORK/post.lua" "http://$ADDR/api/v1/alertmanager" -- measured "$groups" \
    > "$WORK/${name//\//-}.wrk"
  local after; after=$(metric redline_receiver_notifications_stored_total)
  local commits1; commits1=$(metric redline_receiver_commits_total)
  local dups; dups=$(metric redline_receiver_notifications_duplicates_total)
  local rps p50 p99 non2xx reqs
  rps=$(awk '/^Requests\/sec/ {print $2}' "$WORK/${name//\//-}.wrk")
  p50=$(awk '$1 == "50%" {print $2}' "$WORK/${name//\//-}.wrk")
  p99=$(awk '$1 == "99%" {print $2}' "$WORK/${name//\//-}.wrk")
  reqs=$(awk '/requests in/ {print $1}' "$WORK/${name//\//-}.wrk")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$WORK/${name//\//-}.wrk"); non2xx=${non2xx:-0}
  local stored=$(( ${after%.*} - ${before%.*} ))
  local batches=$(( ${commits1%.*} - ${commits0%.*} ))
  printf "%-22s %8s deliveries/s  p50 %-8s p99 %-8s  %s answered 200, %s stored, %s non-2xx, %s duplicates, %.1f deliveries per commit\n" \
    "$name" "$rps" "$p50" "$p99" "$((reqs - non2xx))" "$stored" "$non2xx" "${dups%.*}" \
    "$(awk -v s="$stored" -v b="$batches" 'BEGIN { print (b > 0 ? s / b : 0) }')"
  if [ "$stored" -lt "$((reqs - non2xx))" ]; then echo "FAIL: fewer deliveries stored than answered 200" >&2; exit 1; fi
  kill "${PIDS[-1]}"; wait "${PIDS[-1]}" 2>/dev/null || true
}

echo "redline receiver benchmark: ${DURATION}s, $CONNS connections, wrk -t2, 10 alerts per delivery; $(nproc) cores (shared with wrk and the database)"
# Realistic: 10,000 distinct alerts (1,000 groups of 10) notified over and over. Worst case:
# every alert of every delivery is new (the store grows by 10 alerts per delivery).
run_one "sqlite/10k-alerts" "$WORK/bench.db" 1000
run_one "sqlite/all-new-alerts" "$WORK/bench-new.db" 0

mkdir -p "$WORK/pg"
[ "$(id -u)" -eq 0 ] && chown postgres:postgres "$WORK/pg" && chmod 755 "$WORK"
as_pg "$PGBIN/initdb" -D "$WORK/pg/data" -U postgres --auth=trust -E UTF8 --no-sync >/dev/null
PGPORT=$(free_port)
# PostgreSQL defaults: fsync=on, synchronous_commit=on, so a commit has reached the disk.
as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/server.log" -w \
  -o "-p $PGPORT -k $WORK/pg -c listen_addresses=127.0.0.1" start >/dev/null
as_pg "$PGBIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres new
run_one "postgres/10k-alerts" "postgres://postgres@127.0.0.1:$PGPORT/postgres" 1000
run_one "postgres/all-new-alerts" "postgres://postgres@127.0.0.1:$PGPORT/new" 0
