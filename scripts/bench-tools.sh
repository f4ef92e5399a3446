# shellcheck shell=bash
# Sourced by the bench scripts: `need_tools TOOL...` installs the Debian packages of the tools
# that are missing (nginx comes from nginx-light).
need_tools() {
  local missing=() pkgs=() sudo="" t
  for t in "$@"; do command -v "$t" >/dev/null || missing+=("$t"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  for t in "${missing[@]}"; do [ "$t" = nginx ] && pkgs+=(nginx-light) || pkgs+=("$t"); done
  [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${pkgs[@]}" >/dev/null
}

# `write_upstream_conf DIR PORT`: DIR/up.conf, a one-worker nginx answering 20 bytes on PORT
# (pid in DIR/up.pid), the upstream of every proxy benchmark.
write_upstream_conf() {
  cat > "$1/up.conf" <<C
worker_processes 1; pid $1/up.pid; error_log $1/up.err; events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$2; location / { return 200 "hello from upstream\n"; } } }
C
}

# `write_haproxy_conf DIR LISTEN_PORT STATS_PORT UPSTREAM_PORT [log]`: DIR/ha.cfg, HAProxy as
# proxy-peers.sh runs it (one thread, keep-alive to the upstream, Prometheus exporter on). With
# `log`, DIR/ha-log.cfg instead: the same plus a JSON access line per request on stdout (HAProxy
# 2.6 cannot write a file itself: run it in the foreground, `-db`, with stdout to the file).
write_haproxy_conf() {
  local cfg=$1/ha.cfg log="" fmt
  if [ "${5:-}" = log ]; then
    cfg=$1/ha-log.cfg
    # shellcheck disable=SC2016  # HAProxy's log-format variables, not the shell's
    fmt='{"time":"%tr","client":"%ci","method":"%HM","path":"%HPO","proto":"%HV","status":%ST,"bytes_in":%U,"bytes_out":%B,"duration_ms":%Ta,"upstream_ms":%Tr,"server":"%s","term":"%ts"}'
    log="  log stdout format raw local0
  log-format '$fmt'"
  fi
  cat > "$cfg" <<C
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
  bind 127.0.0.1:$2
  default_backend app
frontend stats
  bind 127.0.0.1:$3
  http-request use-service prometheus-exporter if { path /metrics }
backend app
  server s1 127.0.0.1:$4
C
}

# `write_nginx_proxy_conf DIR LISTEN_PORT UPSTREAM_PORT [log]`: DIR/ngx.conf, nginx as a reverse
# proxy with one worker (pid in DIR/ngx.pid, temp paths under DIR/ngx-tmp): HTTP/1.1 and a
# keep-alive pool to the upstream, access_log off. With `log`, DIR/ngx-log.conf instead: the same
# with a JSON access line per request (`escape=json`) written to DIR/ngx-log.out, with nginx's
# default buffering (none: a write per line) unless NGINX_LOG_BUFFER is set (e.g. 64k). Both
# allow 100000 requests per connection on each side (nginx's default of 1000 would add
# reconnections HAProxy and redline do not make).
write_nginx_proxy_conf() {
  local conf=$1/ngx.conf log="access_log off;" fmt
  if [ "${4:-}" = log ]; then
    conf=$1/ngx-log.conf
    # shellcheck disable=SC2016  # nginx's variables, not the shell's
    fmt='{"time":"$time_iso8601","client":"$remote_addr","method":"$request_method","path":"$uri","proto":"$server_protocol","status":$status,"bytes_in":$request_length,"bytes_out":$bytes_sent,"duration_s":$request_time,"upstream_s":"$upstream_response_time","upstream":"$upstream_addr"}'
    log="log_format json escape=json '$fmt';
  access_log $1/ngx-log.out json${NGINX_LOG_BUFFER:+ buffer=$NGINX_LOG_BUFFER flush=1s};"
  fi
  mkdir -p "$1/ngx-tmp"
  cat > "$conf" <<C
worker_processes 1; pid $1/ngx.pid; error_log $1/ngx.err; events { worker_connections 4096; }
http {
  client_body_temp_path $1/ngx-tmp/body; proxy_temp_path $1/ngx-tmp/proxy;
  fastcgi_temp_path $1/ngx-tmp/fastcgi; uwsgi_temp_path $1/ngx-tmp/uwsgi; scgi_temp_path $1/ngx-tmp/scgi;
  keepalive_requests 100000;
  $log
  upstream app { server 127.0.0.1:$3; keepalive 64; keepalive_requests 100000; }
  server {
    listen 127.0.0.1:$2;
    location / { proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
C
}

# `start_proxy NAME`: starts the proxy NAME (haproxy, haproxy-log, nginx, nginx-log, floor,
# redline-1, redline-auto, redline-cap) on 127.0.0.1:$listen in front of 127.0.0.1:$up, waits
# until it answers 200, and sets $pid (the process to stop) and $measured (the processes whose
# CPU and memory count). Uses the caller's $w (with the confs the write_* functions made),
# $listen, $up, $admin (redline's) and $sink (the OTLP sink's port).
# shellcheck disable=SC2154,SC2086,SC2034  # the caller's variables in and out; ports are plain numbers
start_proxy() {
  local conf kids
  # The previous target's processes may still hold the port for a moment after their parent was
  # reaped (an nginx worker finishing its exit): a proxy started then fails to bind, and the
  # check below would reach the old one.
  for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$listen") 2>/dev/null || break; sleep 0.05; done
  case $1 in
    haproxy) haproxy -f "$w/ha.cfg" -db > "$w/ha.out" 2>&1 & pid=$! ;;
    haproxy-log) : > "$w/ha-log.out"; haproxy -f "$w/ha-log.cfg" -db > "$w/ha-log.out" 2> "$w/ha.err" & pid=$! ;;
    nginx|nginx-log) conf=ngx; [ "$1" = nginx-log ] && conf=ngx-log && : > "$w/ngx-log.out"
             nginx -c "$w/$conf.conf" -e "$w/ngx.err" -g 'daemon off;' & pid=$! ;;
    floor) ./target/release/examples/floor_proxy 127.0.0.1:$listen 127.0.0.1:$up 1 & pid=$! ;;
    redline-1|redline-auto|redline-cap)
      local extra=()
      case $1 in redline-1) extra=(--workers 1) ;; redline-cap) extra=(--workers 1 --max-routes 500) ;; esac
      env -u REDLINE_WORKERS ./target/release/redline sidecar --service bench --service-version bench "${extra[@]}" \
        --listen 127.0.0.1:$listen --admin 127.0.0.1:$admin --upstream http://127.0.0.1:$up --routes / \
        --tracing-endpoint http://127.0.0.1:$sink --tracing-sampler-ratio 1.0 > "$w/redline.out" 2>&1 & pid=$! ;;
  esac
  measured=$pid
  for _ in $(seq 100); do
    if curl -fs -o /dev/null http://127.0.0.1:$listen/; then
      kill -0 "$pid" 2>/dev/null || { echo "$1 exited at start (see the files in $w)" >&2; exit 1; }
      if [[ $1 = nginx* ]]; then
        kids=$(pgrep -P "$pid" | tr '\n' ' ')
        [ "$(wc -w <<<"$kids")" = 1 ] || { echo "$1: expected one nginx worker, found: $kids" >&2; exit 1; }
        measured="$pid $kids"
      fi
      return
    fi
    sleep 0.1
  done
  echo "$1 did not answer on 127.0.0.1:$listen" >&2; exit 1
}

# bench_workdir: a temporary folder in $w for the configurations, logs and pid files, with
# $pids (background helpers) and $pid (the proxy under test) empty, and an EXIT trap that stops
# them and the nginx upstream whose pid file is $w/up.pid, then removes $w.
bench_workdir() {
  w=$(mktemp -d); pids=(); pid=""
  trap bench_cleanup EXIT
}
bench_cleanup() {
  local p
  for p in "${pids[@]}" $pid; do kill "$p" 2>/dev/null || true; done
  if [ -s "$w/up.pid" ]; then kill "$(cat "$w/up.pid")" 2>/dev/null || true; fi
  rm -rf "$w"
}
