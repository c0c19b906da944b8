#!/usr/bin/env bash
# Blocks on local disk against blocks on S3, in one run (issue 16): the
# TSBS-devops-like data set of ingest.sh is loaded into Sundial twice, once
# with local blocks and once with `storage.object_store` on the loopback S3
# server of the tests (sundial-s3: s3s over a directory), then
#   ingest   points/s through /api/put (sundial-load)
#   queries  raw / hourly / max10 of query.sh through /v1: cold (first run
#            after a restart with the OS page cache dropped, so the S3
#            server's files and the local blocks both come from disk) and
#            warm (median of --runs); the answers of both modes compared
#   fetched  for the cold raw query on S3: bytes fetched from the store
#            against the bytes of the chunks the query read
#   backup   `sundial backup --url` of the S3-backed server to a directory
#            and `sundial restore` of it: MB/s as the commands report it
#
#   bench/s3.sh [--hours H] [--hosts N] [--runs R]
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
bench_start s3bench
START=1700000000
END=$(( START + HOURS * 3600 - 1 ))
PORT=14242 URL=http://127.0.0.1:14242

drop_caches() { # cold reads come from disk, for both modes alike
  sync
  if ! echo 3 >/proc/sys/vm/drop_caches 2>/dev/null; then
    echo "cannot drop the page cache (not root): cold runs are page-cache warm" >&2
  fi
}
start_sundial() { # extra serve args...
  "$BIN/sundial" serve --data-dir "$WORK/data-$MODE" --listen 127.0.0.1:$PORT "$@" \
    >>"$WORK/sundial-$MODE.log" 2>&1 &
  SUNDIAL_PID=$!
  wait_http "$URL/api/version" 300 >/dev/null
}
stop_sundial() { kill -TERM "$SUNDIAL_PID"; wait "$SUNDIAL_PID" || true; }
store_counter() { # name: a counter of /admin/storage's object_store
  curl -sf "$URL/admin/storage" | python3 -c \
    'import json,sys; s=json.load(sys.stdin)["object_store"]; print(s[sys.argv[1]] if s else 0)' "$1"
}
query_body() { # name
  local s=$(( START * 1000 )) e=$(( END * 1000 + 999 ))
  case "$1" in
    raw) echo "{\"queries\":[{\"metric\":\"cpu.usage_user\",\"filters\":{\"start\":$s,\"end\":$e,\"tags\":{\"hostname\":[\"host_0\"]}}}]}";;
    hourly) echo "{\"queries\":[{\"metric\":\"cpu.usage_user\",\"filters\":{\"start\":$s,\"end\":$e},\"groupBy\":[{\"name\":\"Tag\",\"tags\":[\"hostname\"]}],\"aggregators\":[{\"name\":\"Avg\",\"sampling\":\"1 hour\"}]}]}";;
    max10) echo "{\"queries\":[{\"metric\":\"cpu.usage_user\",\"filters\":{\"start\":$s,\"end\":$e},\"aggregators\":[{\"name\":\"Max\",\"sampling\":\"10 minutes\"}]}]}";;
  esac
}
ask() { # name [output file]: one query; prints its time in ms
  curl -sf -o "${2:-/dev/null}" -w '%{time_total}\n' -XPUT -H 'Content-Type: application/json' \
    "$URL/v1/datapoint?query" -d "$(query_body "$1")" | awk '{ printf "%.2f\n", $1 * 1000 }'
}

run_mode() { # local | s3
  MODE=$1
  local args=()
  if [ "$MODE" = s3 ]; then
    args=(--object-store s3://bench/sundial)
  fi
  start_sundial "${args[@]}"
  "$BIN/sundial-load" --url "$URL" --label "sundial-$MODE" --hours "$HOURS" --hosts "$HOSTS" \
    --start "$START" >"$WORK/ingest-$MODE.json"
  curl -sf -XPOST "$URL/admin/compact" >/dev/null
  stop_sundial
  for q in raw hourly max10; do
    drop_caches
    start_sundial "${args[@]}"
    local fetched0 chunks0 cold warm=()
    fetched0=$(store_counter fetched_bytes); chunks0=$(store_counter chunk_bytes_read)
    cold=$(ask "$q" "$WORK/answer-$MODE-$q.json")
    local fetched=$(( $(store_counter fetched_bytes) - fetched0 ))
    local chunks=$(( $(store_counter chunk_bytes_read) - chunks0 ))
    for _ in $(seq 1 "$RUNS"); do warm+=("$(ask "$q")"); done
    printf '%s\n' "${warm[@]}" | python3 -c '
import json, statistics, sys
mode, q, cold, fetched, chunks = sys.argv[1:]
warm = sorted(float(x) for x in sys.stdin)
out = {"blocks": mode, "query": q, "cold_ms": float(cold), "warm_median_ms": round(statistics.median(warm), 2)}
if mode == "s3":
    out.update(fetched_bytes=int(fetched), chunk_bytes=int(chunks),
               fetched_per_chunk_byte=round(int(fetched) / max(int(chunks), 1), 3))
print(json.dumps(out))' "$MODE" "$q" "$cold" "$fetched" "$chunks"
    [ "$q" = max10 ] || stop_sundial
  done
}

echo "# s3: ${HOSTS} hosts x 10 metrics, ${HOURS} h at 10 s; warm = median of ${RUNS} runs" >&2
MODE=local run_mode local
stop_sundial

"$BIN/sundial-s3" --root "$WORK/s3" --bucket bench --bucket backups >"$WORK/s3.log" 2>&1 &
for _ in $(seq 1 200); do grep -q "s3 listening on" "$WORK/s3.log" && break; sleep 0.05; done
S3_ADDR=$(sed -n 's/^s3 listening on //p' "$WORK/s3.log")
export AWS_ENDPOINT_URL="http://$S3_ADDR" AWS_ACCESS_KEY_ID=sundial-test \
  AWS_SECRET_ACCESS_KEY=sundial-test-secret AWS_REGION=us-east-1 AWS_ALLOW_HTTP=true
run_mode s3

for q in raw hourly max10; do
  if ! cmp -s "$WORK/answer-local-$q.json" "$WORK/answer-s3-$q.json"; then
    echo "ANSWERS DIFFER for $q between local and S3 blocks" >&2; exit 1
  fi
done
echo '{"answers": "identical on local and S3 blocks for raw, hourly, max10"}'
python3 - "$WORK/ingest-local.json" "$WORK/ingest-s3.json" <<'PY'
import json, sys
local, s3 = (json.load(open(p)) for p in sys.argv[1:])
print(json.dumps({"ingest_points_per_sec": {"local": local["points_per_sec"], "s3": s3["points_per_sec"]},
                  "s3_over_local": round(s3["points_per_sec"] / local["points_per_sec"], 3)}))
PY

# Backup of the S3-backed server (its blocks come out of the bucket) to a
# directory, then a restore of it; each command prints its own MB/s.
"$BIN/sundial" backup --url "$URL" --to "$WORK/backup" --name b1 >"$WORK/backup.out"
"$BIN/sundial" restore --from "$WORK/backup" --data-dir "$WORK/restored" >"$WORK/restore.out"
"$BIN/sundial" backup --url "$URL" --to s3://backups/b --name b2 >"$WORK/backup-s3.out"
stop_sundial
python3 - "$WORK/backup.out" "$WORK/restore.out" "$WORK/backup-s3.out" "$(du -sb "$WORK/backup" | cut -f1)" <<'PY'
import json, re, sys
def rate(path):
    text = open(path).read()
    m = re.search(r"([0-9.]+) MB/s over ([0-9.]+) s", text)
    return {"mb_per_sec": float(m.group(1)), "seconds": float(m.group(2))}
print(json.dumps({"backup_to_dir": rate(sys.argv[1]), "restore_from_dir": rate(sys.argv[2]),
                  "backup_to_s3": rate(sys.argv[3]), "backup_bytes": int(sys.argv[4])}))
PY
