#!/usr/bin/env bash
# `sundial import` throughput (issue 17), one run per format: a data set of
# HOSTS x 10 metrics x one point per 10 s for HOURS hours (2-decimal random
# walks, like ingest.sh's) is written once in each format by
# `sundial export` from a loaded server, then imported into a fresh server
# while the clock runs. Every figure is the importer's own summary (points
# over the wall time of the whole run: reading, sending, the server's WAL
# commit); the answer of each import is checked against the source with
# SQL count(*) and sum(value) per metric.
#
#   bench/import.sh [--hours H] [--hosts N] [--formats "f1 f2 ..."]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/peers.sh
HOURS=24 HOSTS=50 FORMATS="vm-jsonl influx-line telnet csv opentsdb-json baidu-json"
while [ $# -gt 0 ]; do
  case "$1" in
    --hours) HOURS=$2; shift 2;; --hosts) HOSTS=$2; shift 2;;
    --formats) FORMATS=$2; shift 2;; *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
bench_start importbench
PORT=14242 URL=http://127.0.0.1:14242

start_sundial() { # data dir
  "$BIN/sundial" serve --data-dir "$1" --listen 127.0.0.1:$PORT >>"$WORK/sundial.log" 2>&1 &
  SUNDIAL_PID=$!
  wait_http "$URL/api/version" 300 >/dev/null
}
stop_sundial() { kill -TERM "$SUNDIAL_PID"; wait "$SUNDIAL_PID" || true; }
# count and sum per metric, as SQL answers them (the check of each import)
answers() {
  for m in $(curl -sf "$URL/api/export/metrics" | python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin)))'); do
    curl -sf -G "$URL/v1/row" --data-urlencode "sql=select count(*), sum(value) from \"$m\"" \
      | python3 -c 'import json,sys; r=json.load(sys.stdin)["rows"][0]; print(sys.argv[1], r[0], round(r[1], 6))' "$m"
  done
}

start_sundial "$WORK/source"
"$BIN/sundial-load" --url "$URL" --label source --hours "$HOURS" --hosts "$HOSTS" \
  --start 1700000000 >/dev/null
answers >"$WORK/answers-source"
for f in $FORMATS; do
  "$BIN/sundial" export --url "$URL" --format "$f" --output "$WORK/data.$f" 2>"$WORK/export-$f.log"
done
stop_sundial
points=$(awk '{ s += $2 } END { print s }' "$WORK/answers-source")
echo "data set: $points points, $(wc -l <"$WORK/answers-source") metrics, $HOSTS hosts, $HOURS h" >&2

printf '| format | file MB | points/s | answers |\n| --- | --- | --- | --- |\n'
for f in $FORMATS; do
  rm -rf "$WORK/target"
  start_sundial "$WORK/target"
  summary=$("$BIN/sundial" import --url "$URL" --format "$f" "$WORK/data.$f")
  rate=$(sed -n 's/.*(\([0-9]*\) points\/s).*/\1/p' <<<"$summary")
  answers >"$WORK/answers-$f"
  same=$(cmp -s "$WORK/answers-source" "$WORK/answers-$f" && echo same || echo DIFFERENT)
  mb=$(du -m "$WORK/data.$f" | cut -f1)
  printf '| %s | %s | %s | %s |\n' "$f" "$mb" "$rate" "$same"
  stop_sundial
done
