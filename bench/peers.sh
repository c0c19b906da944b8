# Shared by the bench/ scripts (sourced): the build and work dir every
# script starts with, waiting for a server, and the
# loopback-only InfluxDB 1.6 configuration with its OpenTSDB listener.

# wait_http url [timeout seconds]: poll until the URL answers 2xx; prints the
# seconds waited.
wait_http() {
  local t0; t0=$(date +%s%N)
  for _ in $(seq 1 $(( ${2:-30} * 20 ))); do
    if curl -sf -o /dev/null "$1"; then
      awk -v ns=$(( $(date +%s%N) - t0 )) 'BEGIN { printf "%.3f\n", ns / 1e9 }'; return 0
    fi
    sleep 0.05
  done
  echo "timeout waiting for $1" >&2; return 1
}

# influx_conf file dir: writes an influxd config keeping its data in dir,
# HTTP on 127.0.0.1:18086 and the OpenTSDB input on 127.0.0.1:14244.
influx_conf() {
  cat >"$1" <<CONF
reporting-disabled = true
bind-address = "127.0.0.1:18088"
[meta]
  dir = "$2/meta"
[data]
  dir = "$2/data"
  wal-dir = "$2/wal"
  cache-snapshot-write-cold-duration = "5s"
  compact-full-write-cold-duration = "5s"
[coordinator]
[retention]
  enabled = false
[shard-precreation]
  enabled = false
[monitor]
  store-enabled = false
[http]
  enabled = true
  bind-address = "127.0.0.1:18086"
  log-enabled = false
[[opentsdb]]
  enabled = true
  bind-address = "127.0.0.1:14244"
  database = "opentsdb"
[continuous_queries]
  enabled = false
CONF
}

# bench_start name: builds the release server and load tools, sets BIN,
# and WORK to a fresh /tmp/sundial-<name>.* removed on exit, once the
# servers the script started have been stopped and waited for.
bench_start() {
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sundial-target}"
  cargo build --release --locked -p sundial-server -p sundial-testkit >&2
  BIN="$CARGO_TARGET_DIR/release"
  WORK=$(mktemp -d "/tmp/sundial-$1.XXXXXX")
  trap 'pkill -P $$ 2>/dev/null || true; wait 2>/dev/null; rm -rf "$WORK"' EXIT
}
