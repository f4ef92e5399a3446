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

# `peers_script`: the interleaved peers harness named by $PROXY_PEERS (not in this repository
# yet), or exit 2.
peers_script() {
  local peers=${PROXY_PEERS:-}
  [ -n "$peers" ] && [ -f "$peers" ] || { echo "set PROXY_PEERS to the peers harness script" >&2; exit 2; }
  echo "$peers"
}

# `write_upstream_conf DIR PORT`: DIR/up.conf, a one-worker nginx answering 20 bytes on PORT
# (pid in DIR/up.pid), the upstream of every proxy benchmark.
write_upstream_conf() {
  cat > "$1/up.conf" <<C
worker_processes 1; pid $1/up.pid; error_log $1/up.err; events { worker_connections 4096; }
http { access_log off; server { listen 127.0.0.1:$2; location / { return 200 "hello from upstream\n"; } } }
C
}

# `write_haproxy_conf DIR LISTEN_PORT STATS_PORT UPSTREAM_PORT`: DIR/ha.cfg, HAProxy as
# proxy-peers.sh runs it (one thread, keep-alive to the upstream, Prometheus exporter on).
write_haproxy_conf() {
  cat > "$1/ha.cfg" <<C
global
  nbthread 1
  maxconn 4096
defaults
  mode http
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
