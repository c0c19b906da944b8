#!/usr/bin/env bash
# End-to-end query benchmark: the TSBS-devops-like data set of ingest.sh is
# loaded into Sundial, VictoriaMetrics and InfluxDB 1.6 (one after another,
# loopback), then three equivalent queries are timed on each:
#   raw    24 h of one series (cpu.usage_user of host_0)
#   hourly hourly avg per host over 24 h, 100 hosts, grouped by host
#   max10  10-minute max over all hosts, 24 h
# Sundial answers through the Baidu /v1 JSON query (and, labelled
# sundial-opentsdb, through OpenTSDB's /api/query; the hourly query also as
# SQL on /v1/row, labelled sundial-sql), VictoriaMetrics through
# export / query_range, InfluxDB through InfluxQL. Each query runs once to
# warm up, then --runs times, each from a new curl process and connection;
# the median wall time (curl time_total) is reported in ms. Then --runs
# times more back to back on one kept-alive connection (keepalive_median_ms):
# on this virtual machine a query arriving after an idle gap of a few ms
# takes up to 1 ms longer on every server. Then presampling rules for the
# hourly and max10 queries are added (Baidu spec 12), the blocks compacted
# again to carry their buckets, and the two /v1 queries timed again (labelled
# sundial-presampled), their answers checked against raw evaluation; with
# rules on OpenTSDB's epoch-aligned grids too, its two aggregating queries
# are timed again (sundial-opentsdb-presampled), their answers checked
# against those before the rules.
#
#   bench/query.sh [--hours H] [--hosts N] [--runs R] [--only sundial]
#                  [--baseline BIN] [--cold]
# --cold runs Sundial with its decoded-chunk cache off
# (storage.chunk_cache_bytes = 0), as VictoriaMetrics always runs here
# (-search.disableCache, nocache=1).
# --baseline serves the same data from another build of the server as well
# (labels ending in @base): both are loaded, then each query is timed in
# rounds that alternate between the two builds, so drift of the machine
# during the run falls on both alike. Build BIN in a checkout with a
# CARGO_TARGET_DIR of its own: two checkouts of one workspace building into
# one target directory can leave either's binary linked from the other's
# crates.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/peers.sh
HOURS=24 HOSTS=100 RUNS=15 ONLY="" BASELINE="" COLD=""
while [ $# -gt 0 ]; do
  case "$1" in
    --hours) HOURS=$2; shift 2;; --hosts) HOSTS=$2; shift 2;;
    --runs) RUNS=$2; shift 2;; --only) ONLY=$2; shift 2;;
    --baseline) BASELINE=$2; shift 2;;
    --cold) COLD=1; shift;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
bench_start qbench
START=1700000000
END=$(( START + HOURS * 3600 - 1 ))
PARTITION=2023_11

if [ -z "$ONLY" ] && ! { command -v victoria-metrics && command -v influxd; } >/dev/null; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends victoria-metrics influxdb >&2
fi

load() { # base url
  "$BIN/sundial-load" --url "$1" --hours "$HOURS" --hosts "$HOSTS" --start "$START" >&2
}
# time_query label name curl-args...: warm-up, then RUNS timed runs (curl
# time_total) appended to $WORK/times/<label> <name>, and RUNS kept-alive
# ones to "<label> <name>.ka"; report prints the medians, in the order the
# labels were first timed.
time_query() {
  local label=$1 name=$2; shift 2
  local size; size=$(curl -sf -o "$WORK/out" -w '%{size_download}' "$@")
  echo "$size" >"$WORK/times/$label $name.bytes"
  grep -qxF "$label $name" "$WORK/times/order" 2>/dev/null || echo "$label $name" >>"$WORK/times/order"
  for _ in $(seq 1 "$RUNS"); do
    curl -sf -o /dev/null -w '%{time_total}\n' "$@" >>"$WORK/times/$label $name"
  done
  # Then RUNS more back to back on one kept-alive connection, as Grafana
  # and the OpenTSDB clients send them (the first, opening it, not timed).
  local runs=(-sf -o /dev/null -w '%{time_total}\n' "$@")
  for _ in $(seq 1 "$RUNS"); do runs+=(--next -sf -o /dev/null -w '%{time_total}\n' "$@"); done
  curl "${runs[@]}" | tail -n +2 >>"$WORK/times/$label $name.ka"
}
# One JSON line per label and query, in the order they were first timed.
report() {
  python3 - "$WORK/times" <<'PY'
import json, os, statistics, sys
d = sys.argv[1]
for f in open(os.path.join(d, "order")).read().splitlines():
    t = sorted(float(x) * 1000 for x in open(os.path.join(d, f)))
    ka = sorted(float(x) * 1000 for x in open(os.path.join(d, f + ".ka")))
    label, name = f.split(" ")
    size = int(open(os.path.join(d, f + ".bytes")).read())
    print(json.dumps({"server": label, "query": name, "median_ms": round(statistics.median(t), 2),
                      "min_ms": round(t[0], 2), "keepalive_median_ms": round(statistics.median(ka), 2),
                      "runs": len(t), "bytes": size}))
PY
  rm -f "$WORK"/times/*
}
mkdir -p "$WORK/times"

start_sundial() { # server binary, port
  local cache=""
  [ -n "$COLD" ] && cache="chunk_cache_bytes = 0"
  printf '[storage]\n%s\n' "$cache" >"$WORK/sundial-$2.toml"
  "$1" serve --config "$WORK/sundial-$2.toml" --data-dir "$WORK/sundial-$2" \
    --listen 127.0.0.1:"$2" >"$WORK/sundial-$2.log" 2>&1 &
  wait_http "http://127.0.0.1:$2/api/version" >/dev/null
  load "http://127.0.0.1:$2"
  curl -sf -XPOST "http://127.0.0.1:$2/admin/compact" >/dev/null
}

query_sundial() { # port, label suffix
  local port=$1 at=$2 url
  url="http://127.0.0.1:$port/v1/datapoint?query"
  local s=$(( START * 1000 )) e=$(( END * 1000 + 999 ))
  q() { time_query "sundial$at" "$1" -XPUT -H 'Content-Type: application/json' "$url" -d "{\"queries\":[$2]}"; }
  q raw "{\"metric\":\"cpu.usage_user\",\"filters\":{\"start\":$s,\"end\":$e,\"tags\":{\"hostname\":[\"host_0\"]}}}"
  q hourly "{\"metric\":\"cpu.usage_user\",\"filters\":{\"start\":$s,\"end\":$e},\"groupBy\":[{\"name\":\"Tag\",\"tags\":[\"hostname\"]}],\"aggregators\":[{\"name\":\"Avg\",\"sampling\":\"1 hour\"}]}"
  q max10 "{\"metric\":\"cpu.usage_user\",\"filters\":{\"start\":$s,\"end\":$e},\"aggregators\":[{\"name\":\"Max\",\"sampling\":\"10 minutes\"}]}"
  # The same three through Sundial's OpenTSDB /api/query.
  local api="http://127.0.0.1:$port/api/query"
  o() { time_query "sundial-opentsdb$at" "$1" -G "$api" -d "start=$START" -d "end=$END" --data-urlencode "m=$2"; }
  o raw "none:cpu.usage_user{hostname=host_0}"
  o hourly "avg:1h-avg:cpu.usage_user{hostname=*}"
  o max10 "max:10m-max:cpu.usage_user"
  # The hourly query as SQL on /v1/row.
  time_query "sundial-sql$at" hourly -G "http://127.0.0.1:$port/v1/row" --data-urlencode \
    "sql=select hostname, time_bucket(timestamp, '1 hour') as h, avg(value) as v from \`cpu.usage_user\` where timestamp between $s and $e group by hostname, time_bucket(timestamp, '1 hour')"
}

# Adds the rules, rewrites the blocks with their buckets, and times the two
# aggregating /v1 queries again; each answer must equal raw evaluation's.
presampled_sundial() { # port
  local port=$1 s=$(( START * 1000 )) e=$(( END * 1000 + 999 ))
  local admin="http://127.0.0.1:$port/admin/presampling" url="http://127.0.0.1:$port/v1/datapoint?query"
  local api="http://127.0.0.1:$port/api/query"
  # OpenTSDB's answers before any rule, to compare with those after.
  o_get() { curl -sf -G "$api" -d "start=$START" -d "end=$END" --data-urlencode "m=$1"; }
  o_get "avg:1h-avg:cpu.usage_user{hostname=*}" >"$WORK/o-hourly"
  o_get "max:10m-max:cpu.usage_user" >"$WORK/o-max10"
  rule() { # id, startTime, aggregator, sampling
    curl -sf -XPOST "$admin" -d "{\"id\":\"$1\",\"metric\":\"cpu.usage_user\",\"startTime\":$2,\"aggregators\":[{\"name\":\"$3\",\"sampling\":\"$4\"}]}" >/dev/null
  }
  rule hourly "$s" Avg "1 hour"
  rule max10 "$s" Max "10 minutes"
  # OpenTSDB's buckets count from the epoch: rules on its grids.
  rule hourly-epoch 0 Avg "1 hour"
  rule max10-epoch 0 Max "10 minutes"
  curl -sf -XPOST "http://127.0.0.1:$port/admin/compact" >/dev/null
  local hourly="{\"metric\":\"cpu.usage_user\",\"filters\":{\"start\":$s,\"end\":$e},\"groupBy\":[{\"name\":\"Tag\",\"tags\":[\"hostname\"]}],\"aggregators\":[{\"name\":\"Avg\",\"sampling\":\"1 hour\"}]}"
  local max10="{\"metric\":\"cpu.usage_user\",\"filters\":{\"start\":$s,\"end\":$e},\"aggregators\":[{\"name\":\"Max\",\"sampling\":\"10 minutes\"}]}"
  for pair in "hourly:$hourly" "max10:$max10"; do
    local name=${pair%%:*} query=${pair#*:}
    curl -sf -XPUT -H 'Content-Type: application/json' "$url" -d "{\"queries\":[$query]}" >"$WORK/hit"
    curl -sf -XPUT -H 'Content-Type: application/json' "$url" \
      -d "{\"queries\":[$query],\"disablePresampling\":true}" >"$WORK/raw"
    python3 - "$WORK/hit" "$WORK/raw" "$name" <<'PY'
import json, sys
hit, raw = (json.load(open(p))["results"][0] for p in sys.argv[1:3])
assert hit.get("presamplingRuleId") == sys.argv[3], f"no hit: {hit.get('presamplingRuleId')}"
assert hit["groups"] == raw["groups"] and hit["rawCount"] == raw["rawCount"], "answers differ"
print(f"# presampled {sys.argv[3]}: same answer as raw, consumedCount "
      f"{hit['consumedCount']} vs {raw['consumedCount']}", file=sys.stderr)
PY
    time_query sundial-presampled "$name" -XPUT -H 'Content-Type: application/json' "$url" -d "{\"queries\":[$query]}"
  done
  for pair in "hourly:avg:1h-avg:cpu.usage_user{hostname=*}" "max10:max:10m-max:cpu.usage_user"; do
    local name=${pair%%:*} m=${pair#*:}
    o_get "$m" | cmp -s - "$WORK/o-$name" || { echo "OpenTSDB $name answers differently with rules" >&2; exit 1; }
    time_query sundial-opentsdb-presampled "$name" -G "$api" -d "start=$START" -d "end=$END" --data-urlencode "m=$m"
  done
}

run_sundial() {
  start_sundial "$BIN/sundial" 14242
  if [ -z "$BASELINE" ]; then
    query_sundial 14242 ""
    presampled_sundial 14242
  else
    start_sundial "$BASELINE" 14252
    # Rounds of a few runs each, alternating builds.
    local rounds=$(( RUNS >= 5 ? 5 : 1 )) total=$RUNS
    RUNS=$(( (total + rounds - 1) / rounds ))
    for _ in $(seq 1 "$rounds"); do
      query_sundial 14252 @base
      query_sundial 14242 ""
    done
    RUNS=$total
  fi
  report
}

run_victoria() {
  victoria-metrics -storageDataPath="$WORK/vm" -httpListenAddr=127.0.0.1:18428 \
    -opentsdbHTTPListenAddr=127.0.0.1:14243 -retentionPeriod=100y -search.disableCache \
    >"$WORK/vm.log" 2>&1 &
  wait_http "http://127.0.0.1:18428/health" >/dev/null
  sleep 1
  load "http://127.0.0.1:14243"
  curl -sf "http://127.0.0.1:18428/internal/force_flush" >/dev/null
  curl -sf "http://127.0.0.1:18428/internal/force_merge?partition_prefix=$PARTITION" >/dev/null
  local base=http://127.0.0.1:18428/api/v1
  time_query victoriametrics raw -G "$base/export" --data-urlencode 'match[]={__name__="cpu.usage_user",hostname="host_0"}' \
    -d "start=$START" -d "end=$END"
  time_query victoriametrics hourly -G "$base/query_range" \
    --data-urlencode 'query=avg by (hostname) (avg_over_time({__name__="cpu.usage_user"}[1h]))' \
    -d "start=$(( START + 3600 ))" -d "end=$(( END + 1 ))" -d step=3600 -d nocache=1
  time_query victoriametrics max10 -G "$base/query_range" \
    --data-urlencode 'query=max(max_over_time({__name__="cpu.usage_user"}[10m]))' \
    -d "start=$(( START + 600 ))" -d "end=$(( END + 1 ))" -d step=600 -d nocache=1
}

run_influx() {
  local dir="$WORK/influx"
  mkdir -p "$dir"
  influx_conf "$WORK/influxdb.conf" "$dir"
  influxd -config "$WORK/influxdb.conf" >"$WORK/influx.log" 2>&1 &
  wait_http "http://127.0.0.1:18086/ping" >/dev/null
  curl -sf -XPOST "http://127.0.0.1:18086/query" --data-urlencode "q=CREATE DATABASE opentsdb" >/dev/null
  load "http://127.0.0.1:14244"
  sleep 12
  local range="time >= ${START}s AND time <= ${END}s"
  iq() { time_query influxdb "$1" -G http://127.0.0.1:18086/query -d db=opentsdb --data-urlencode "q=$2"; }
  iq raw "SELECT value FROM \"cpu.usage_user\" WHERE hostname = 'host_0' AND $range"
  iq hourly "SELECT mean(value) FROM \"cpu.usage_user\" WHERE $range GROUP BY time(1h), hostname"
  iq max10 "SELECT max(value) FROM \"cpu.usage_user\" WHERE $range GROUP BY time(10m)"
}

echo "# query: ${HOSTS} hosts x 10 metrics, ${HOURS} h at 10 s; median of ${RUNS} runs" >&2
run_sundial
pkill -P $$ 2>/dev/null || true; sleep 1
[ -n "$ONLY" ] && exit 0
run_victoria
report
pkill -P $$ 2>/dev/null || true; sleep 1
run_influx
report
