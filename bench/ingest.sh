#!/usr/bin/env bash
# End-to-end ingest benchmark: the same TSBS-devops-like data set posted
# through OpenTSDB `/api/put` to Sundial, then VictoriaMetrics and InfluxDB
# 1.6 (Debian packages), one after another on loopback. Reports points/s,
# bytes per point on disk after the data settles, peak RSS and restart time,
# and the CPU time the load generator itself used (it shares the cores).
#
#   bench/ingest.sh [--hours H] [--hosts N] [--batch B] [--connections C]
#                   [--only sundial,victoriametrics,influxdb]
#                   [--profile wide]
#
# --profile wide: 1 M series (100 000 hosts x 10 metrics) of 12 points each,
# for memory per series (resident memory once the server is idle after the
# load, divided by the series: under 5% of a core for a second, as a flush
# in progress would otherwise decide the figure) and the peak through
# compaction (or VictoriaMetrics' merge).
#
# Bounded: one pass over the data set per server. Installs the peers with
# apt-get if they are missing (needs root, as on the project machines).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/peers.sh
HOURS=24 HOSTS=100 BATCH=5000 CONNS=4 ONLY=""
while [ $# -gt 0 ]; do
  case "$1" in
    --hours) HOURS=$2; shift 2;; --hosts) HOSTS=$2; shift 2;;
    --batch) BATCH=$2; shift 2;; --connections) CONNS=$2; shift 2;;
    --only) ONLY=$2; shift 2;;
    --profile)
      [ "$2" = wide ] || { echo "unknown profile $2" >&2; exit 2; }
      HOSTS=100000 HOURS=0.0334; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
bench_start bench
START=1700000000   # 2023-11-14: VictoriaMetrics partitions by month
PARTITION=2023_11

wants() { [ -z "$ONLY" ] || [[ ",$ONLY," == *",$1,"* ]]; }
if { wants victoriametrics || wants influxdb; } \
  && ! { command -v victoria-metrics && command -v influxd; } >/dev/null; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends victoria-metrics influxdb >&2
fi

settle() { # dir: wait until its allocated size stops changing
  local last=-1 now
  for _ in $(seq 1 120); do
    now=$(du -s -B1 "$1" | cut -f1)
    [ "$now" = "$last" ] && break
    last=$now; sleep 1
  done
  echo "$now"
}
hwm() { awk '/VmHWM/ {printf "%d\n", $2 * 1024}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
quiet() { # pid: wait until it uses under 5% of a core for a second (30 s at most)
  local last now
  last=$(cpu_ticks "$1")
  for _ in $(seq 1 30); do
    sleep 1; now=$(cpu_ticks "$1")
    [ $((now - last)) -lt 5 ] && break
    last=$now
  done
}
rss() { awk '/VmRSS/ {printf "%d\n", $2 * 1024}' "/proc/$1/status"; }
load() { # label, base url
  "$BIN/sundial-load" --url "$2" --label "$1" --hours "$HOURS" --hosts "$HOSTS" \
    --batch "$BATCH" --connections "$CONNS" --start "$START"
}
report() { # label, load json, disk bytes, peak rss bytes, restart seconds, rss after the load
  python3 - "$@" "$HOSTS" <<'PY'
import json, sys
label, load, disk, rss, restart, loaded, hosts = sys.argv[1:]
l = json.loads(load)
series = int(hosts) * 10
print(json.dumps({"server": label, "points": l["points"], "points_per_sec": l["points_per_sec"],
                  "bytes_per_point": round(int(disk) / l["points"], 3),
                  "peak_rss_mib": round(int(rss) / 2**20, 1),
                  "loaded_rss_mib": round(int(loaded) / 2**20, 1),
                  "loaded_rss_bytes_per_series": round(int(loaded) / series),
                  "restart_s": round(float(restart), 2),
                  "load_client_cpu_s": l.get("client_cpu_seconds")}))
PY
}

run_sundial() {
  local dir="$WORK/sundial" port=14242
  "$BIN/sundial" serve --data-dir "$dir" --listen 127.0.0.1:$port >"$WORK/sundial.log" 2>&1 &
  local pid=$!
  wait_http "http://127.0.0.1:$port/api/version" 30 >/dev/null
  local out; out=$(load sundial "http://127.0.0.1:$port")
  quiet $pid; local loaded; loaded=$(rss $pid)
  # Settle like VictoriaMetrics' force_merge: flush and merge all blocks.
  curl -sf -XPOST "http://127.0.0.1:$port/admin/compact" >/dev/null
  local rss; rss=$(hwm $pid)
  kill -TERM $pid; wait $pid || true          # clean stop flushes the head
  local disk; disk=$(settle "$dir")
  "$BIN/sundial" serve --data-dir "$dir" --listen 127.0.0.1:$port >>"$WORK/sundial.log" 2>&1 &
  pid=$!
  local restart; restart=$(wait_http "http://127.0.0.1:$port/api/version" 300)
  kill -TERM $pid; wait $pid || true
  report sundial "$out" "$disk" "$rss" "$restart" "$loaded"
}

run_victoria() {
  local dir="$WORK/vm"
  local args=(-storageDataPath="$dir" -httpListenAddr=127.0.0.1:18428
    -opentsdbHTTPListenAddr=127.0.0.1:14243 -retentionPeriod=100y -search.disableCache)
  victoria-metrics "${args[@]}" >"$WORK/vm.log" 2>&1 &
  local pid=$!
  wait_http "http://127.0.0.1:18428/health" 30 >/dev/null
  sleep 1
  local out; out=$(load victoriametrics "http://127.0.0.1:14243")
  quiet $pid; local loaded; loaded=$(rss $pid)
  curl -sf "http://127.0.0.1:18428/internal/force_flush" >/dev/null
  curl -sf "http://127.0.0.1:18428/internal/force_merge?partition_prefix=$PARTITION" >/dev/null
  local rss; rss=$(hwm $pid)
  local disk; disk=$(settle "$dir")
  kill -TERM $pid; wait $pid || true
  victoria-metrics "${args[@]}" >>"$WORK/vm.log" 2>&1 &
  pid=$!
  local restart; restart=$(wait_http "http://127.0.0.1:18428/health" 300)
  kill -TERM $pid; wait $pid || true
  report victoriametrics "$out" "$disk" "$rss" "$restart" "$loaded"
}

run_influx() {
  local dir="$WORK/influx"
  mkdir -p "$dir"
  influx_conf "$WORK/influxdb.conf" "$dir"
  influxd -config "$WORK/influxdb.conf" >"$WORK/influx.log" 2>&1 &
  local pid=$!
  wait_http "http://127.0.0.1:18086/ping" 30 >/dev/null
  curl -sf -XPOST "http://127.0.0.1:18086/query" --data-urlencode "q=CREATE DATABASE opentsdb" >/dev/null
  local out; out=$(load influxdb "http://127.0.0.1:14244")
  quiet $pid; local loaded; loaded=$(rss $pid)
  local rss; rss=$(hwm $pid)
  sleep 12   # let the cold-write snapshot and full compaction run
  local disk; disk=$(settle "$dir")
  kill -TERM $pid; wait $pid || true
  influxd -config "$WORK/influxdb.conf" >>"$WORK/influx.log" 2>&1 &
  pid=$!
  local restart; restart=$(wait_http "http://127.0.0.1:18086/ping" 300)
  kill -TERM $pid; wait $pid || true
  report influxdb "$out" "$disk" "$rss" "$restart" "$loaded"
}

echo "# ingest: ${HOSTS} hosts x 10 metrics, ${HOURS} h at 10 s, batch ${BATCH}, ${CONNS} connections" >&2
if wants sundial; then run_sundial; fi
if wants victoriametrics; then run_victoria; fi
if wants influxdb; then run_influx; fi
