#!/usr/bin/env bash
# Rollup tiers (docs/storage.md, "Rollup tiers") on ingest.sh's data set:
# loaded into one Sundial without tiers and one with tiers of 10 minutes
# and an hour (both with the decoded-chunk cache off), compacted. Reports
# the blocks' bytes per point of each, then times the hourly average per
# host and the 10-minute max over all hosts through OpenTSDB /api/query,
# Baidu /v1 and SQL (median of --runs, curl time_total), every answer
# checked against the server without tiers. Then the tiered server's raw
# points are expired (/api/ttl) while its tiers stay: bytes, times and
# answers again, from the rollups alone (and the raw series must be gone).
#
#   bench/rollups.sh [--hours H] [--hosts N] [--runs R]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/peers.sh
HOURS=24 HOSTS=100 RUNS=15
while [ $# -gt 0 ]; do
  case "$1" in
    --hours) HOURS=$2; shift 2;; --hosts) HOSTS=$2; shift 2;;
    --runs) RUNS=$2; shift 2;; *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
bench_start rollbench
START=1700000000
END=$(( START + HOURS * 3600 - 1 ))
S=$(( START * 1000 )) E=$(( END * 1000 + 999 ))
# Baidu's buckets count from the query's start: from a whole hour, the
# tiers' grids refine them.
HOUR_S=$(( S - S % 3600000 ))
mkdir -p "$WORK/answers"

serve() { # name, port, extra [storage] lines
  printf '[storage]\nchunk_cache_bytes = 0\n%s\n' "$3" >"$WORK/$1.toml"
  "$BIN/sundial" serve --config "$WORK/$1.toml" --data-dir "$WORK/$1" \
    --listen 127.0.0.1:"$2" >"$WORK/$1.log" 2>&1 &
  wait_http "http://127.0.0.1:$2/api/version" >/dev/null
  "$BIN/sundial-load" --url "http://127.0.0.1:$2" --hours "$HOURS" --hosts "$HOSTS" \
    --start "$START" >"$WORK/$1.load"
  curl -sf -XPOST "http://127.0.0.1:$2/admin/compact" >/dev/null
}
serve plain 14250 ""
serve tiered 14251 $'rollup_secs = [600, 3600]\nrollup_retention_secs = 0'
POINTS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["points"])' "$WORK/plain.load")

sizes() { # label, name
  local bytes; bytes=$(cat "$WORK/$2"/db/default/block-*.sdb | wc -c)
  python3 -c 'import json,sys; l,b,p=sys.argv[1:]; print(json.dumps({"server": l, "block_bytes": int(b), "bytes_per_point": round(int(b)/int(p), 3)}))' \
    "$1" "$bytes" "$POINTS"
}

# The answer normalised for comparison: JSON with rows and series sorted.
normal() {
  python3 -c '
import json, sys
def norm(v):
    if isinstance(v, dict): return {k: norm(x) for k, x in v.items()}
    if isinstance(v, list): return sorted((norm(x) for x in v), key=json.dumps)
    return v
print(json.dumps(norm(json.load(sys.stdin)), sort_keys=True))'
}

# time label name curl-args...: the answer (checked against plain's), then
# the median of RUNS timed runs.
time_one() {
  local label=$1 name=$2; shift 2
  curl -sf "$@" | normal >"$WORK/answers/$label-$name"
  if [ "$label" != plain ] && ! cmp -s "$WORK/answers/plain-$name" "$WORK/answers/$label-$name"; then
    echo "$label $name: the answer differs from the server without tiers" >&2; exit 1
  fi
  for _ in $(seq 1 "$RUNS"); do curl -sf -o /dev/null -w '%{time_total}\n' "$@"; done |
    python3 -c 'import json,statistics,sys; t=[float(x)*1000 for x in sys.stdin]; print(json.dumps({"server": sys.argv[1], "query": sys.argv[2], "median_ms": round(statistics.median(t), 2)}))' \
      "$label" "$name"
}

queries() { # label, port
  local api="http://127.0.0.1:$2" hourly max10
  hourly="{\"metric\":\"cpu.usage_user\",\"filters\":{\"start\":$HOUR_S,\"end\":$E},\"groupBy\":[{\"name\":\"Tag\",\"tags\":[\"hostname\"]}],\"aggregators\":[{\"name\":\"Avg\",\"sampling\":\"1 hour\"}]}"
  max10="{\"metric\":\"cpu.usage_user\",\"filters\":{\"start\":$HOUR_S,\"end\":$E},\"aggregators\":[{\"name\":\"Max\",\"sampling\":\"10 minutes\"}]}"
  time_one "$1" opentsdb-hourly -G "$api/api/query" -d "start=$START" -d "end=$END" \
    --data-urlencode "m=avg:1h-avg:cpu.usage_user{hostname=*}"
  time_one "$1" opentsdb-max10 -G "$api/api/query" -d "start=$START" -d "end=$END" \
    --data-urlencode "m=max:10m-max:cpu.usage_user"
  time_one "$1" v1-hourly -XPUT -H 'Content-Type: application/json' "$api/v1/datapoint?query" \
    -d "{\"queries\":[$hourly]}"
  time_one "$1" v1-max10 -XPUT -H 'Content-Type: application/json' "$api/v1/datapoint?query" \
    -d "{\"queries\":[$max10]}"
  time_one "$1" sql-hourly -G "$api/v1/row" --data-urlencode \
    "sql=select hostname, time_bucket(timestamp, '1 hour') as h, avg(value) as v from \`cpu.usage_user\` where timestamp between $S and $E group by hostname, time_bucket(timestamp, '1 hour')"
}

sizes plain plain
sizes tiered tiered
queries plain 14250
queries tiered 14251
# Raw points kept a day: the data set (2023) expires, its tiers stay.
curl -sf -XPOST http://127.0.0.1:14251/api/ttl -d '{"val": 86400}' >/dev/null
curl -sf -XPOST http://127.0.0.1:14251/admin/compact >/dev/null
raw=$(curl -sf -G http://127.0.0.1:14251/api/query -d "start=$START" -d "end=$END" \
  --data-urlencode 'm=none:cpu.usage_user{hostname=host_0}')
[ "$raw" = "[]" ] || { echo "raw points past the retention: ${raw:0:200}" >&2; exit 1; }
sizes tiered-expired tiered
queries tiered-expired 14251
