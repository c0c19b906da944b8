#!/usr/bin/env bash
# The long profile (issue 19): HOSTS hosts x 10 cpu metrics, one point a
# minute for DAYS days (default 1000 x 10 x 30 d = 432 M points), made by
# `sundial-load --vm-jsonl` and streamed (no file) into `sundial import`
# and into VictoriaMetrics' /api/v1/import, one after the other. Sundial
# runs with rollup tiers (--tiers, seconds; default an hour), its
# decoded-chunk cache off; VictoriaMetrics with its caches off. Each is compacted
# (force_merge) before its queries, over the whole range:
#   hourly  hourly average per host of cpu.usage_user (HOSTS series)
#   daily   daily max over all hosts of cpu.usage_user
# Sundial answers through OpenTSDB /api/query and Baidu /v1 (tiers), and
# /v1 with disablePresampling (raw evaluation: decoded points and
# whole-chunk statistics); VictoriaMetrics through query_range. Every
# answer is checked against VictoriaMetrics' (relative 1e-9). Reports the
# load and compaction times, bytes per point and the median of --runs
# timed runs (curl time_total) per query, one JSON line each.
#
#   bench/long.sh [--hosts N] [--days D] [--runs R] [--tiers "600 3600"]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/peers.sh
HOSTS=1000 DAYS=30 RUNS=5 TIERS=3600
while [ $# -gt 0 ]; do
  case "$1" in
    --hosts) HOSTS=$2; shift 2;; --days) DAYS=$2; shift 2;;
    --runs) RUNS=$2; shift 2;; --tiers) TIERS=$2; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
if ! command -v victoria-metrics >/dev/null; then
  apt-get update -qq && apt-get install -y -qq --no-install-recommends victoria-metrics >&2
fi
bench_start longbench
DAY0=1700006400 # 2023-11-15 00:00 UTC
# Points at 30 s past each minute: none on a bucket's edge, where
# VictoriaMetrics' windows (open on the left) and OpenTSDB's buckets
# (open on the right) would disagree.
START=$(( DAY0 + 30 ))
END=$(( DAY0 + DAYS * 86400 - 1 ))
S=$(( DAY0 * 1000 )) E=$(( END * 1000 + 999 ))
POINTS=$(( HOSTS * 10 * DAYS * 1440 ))
mkdir -p "$WORK/answers"
now() { date +%s.%N; }
since() { python3 -c 'import sys,time; print(round(time.time()-float(sys.argv[1]),1))' "$1"; }
generate() {
  "$BIN/sundial-load" --vm-jsonl 1440 --hosts "$HOSTS" --hours $(( DAYS * 24 )) \
    --interval-s 60 --start "$START"
}
# report_load server dir pid: load and compaction seconds, allocated
# bytes per point of the whole data dir, peak RSS.
report_load() {
  python3 -c '
import json, sys
server, load_s, compact_s, disk, points, hwm_kib = sys.argv[1:]
print(json.dumps({"server": server, "points": int(points), "load_s": float(load_s),
                  "compact_s": float(compact_s), "bytes_per_point": round(int(disk) / int(points), 3),
                  "peak_rss_mib": int(hwm_kib) // 1024}))' "$1" "$load_s" "$compact_s" \
    "$(du -s -B1 "$2" | cut -f1)" "$POINTS" "$(awk '/VmHWM/ {print $2}' "/proc/$3/status")"
}
# time_query label name curl-args...: the answer kept, then the median of
# RUNS timed runs.
time_query() {
  local label=$1 name=$2; shift 2
  curl -sf -o "$WORK/answers/$label-$name" "$@"
  for _ in $(seq 1 "$RUNS"); do curl -sf -o /dev/null -w '%{time_total}\n' "$@"; done |
    python3 -c 'import json,statistics,sys; t=[float(x)*1000 for x in sys.stdin]; print(json.dumps({"server": sys.argv[1], "query": sys.argv[2], "median_ms": round(statistics.median(t), 1), "min_ms": round(min(t), 1)}))' \
      "$label" "$name"
}
echo "# long: $HOSTS hosts x 10 metrics, $DAYS days at 60 s = $POINTS points; tiers [$TIERS] s; median of $RUNS runs" >&2

# --- Sundial
SUN=http://127.0.0.1:14260
printf '[storage]\nchunk_cache_bytes = 0\nrollup_secs = [%s]\n[limits]\nmax_query_points = 1000000000\nquery_timeout_secs = 600\n' "$(echo $TIERS | tr ' ' ',')" >"$WORK/sundial.toml"
"$BIN/sundial" serve --config "$WORK/sundial.toml" --data-dir "$WORK/sundial" \
  --listen 127.0.0.1:14260 >"$WORK/sundial.log" 2>&1 &
SUN_PID=$!
wait_http "$SUN/api/version" >/dev/null
t=$(now)
generate | "$BIN/sundial" import --url "$SUN" --format vm-jsonl - >"$WORK/import.out"
load_s=$(since "$t")
t=$(now)
curl -sf -XPOST "$SUN/admin/compact" >/dev/null
compact_s=$(since "$t")
report_load sundial "$WORK/sundial" "$SUN_PID"
hourly_v1="{\"metric\":\"cpu.usage_user\",\"filters\":{\"start\":$S,\"end\":$E},\"groupBy\":[{\"name\":\"Tag\",\"tags\":[\"hostname\"]}],\"aggregators\":[{\"name\":\"Avg\",\"sampling\":\"1 hour\"}]}"
daily_v1="{\"metric\":\"cpu.usage_user\",\"filters\":{\"start\":$S,\"end\":$E},\"aggregators\":[{\"name\":\"Max\",\"sampling\":\"1 day\"}]}"
o() { time_query sundial-opentsdb "$1" -G "$SUN/api/query" -d "start=$DAY0" -d "end=$END" --data-urlencode "m=$2"; }
v() { time_query "$1" "$2" -XPUT -H 'Content-Type: application/json' "$SUN/v1/datapoint?query" -d "$3"; }
o hourly "avg:1h-avg:cpu.usage_user{hostname=*}"
o daily "max:1d-max:cpu.usage_user"
v sundial-v1 hourly "{\"queries\":[$hourly_v1]}"
v sundial-v1 daily "{\"queries\":[$daily_v1]}"
v sundial-v1-raw hourly "{\"queries\":[$hourly_v1],\"disablePresampling\":true}"
v sundial-v1-raw daily "{\"queries\":[$daily_v1],\"disablePresampling\":true}"
pkill -P $$ 2>/dev/null || true; wait 2>/dev/null || true

# --- VictoriaMetrics
VM=http://127.0.0.1:18428
victoria-metrics -storageDataPath="$WORK/vm" -httpListenAddr=127.0.0.1:18428 \
  -retentionPeriod=100y -search.disableCache >"$WORK/vm.log" 2>&1 &
VM_PID=$!
wait_http "$VM/health" >/dev/null
t=$(now)
generate | curl -sf -XPOST -T - "$VM/api/v1/import"
curl -sf "$VM/internal/force_flush" >/dev/null
load_s=$(since "$t")
t=$(now)
# One merge per monthly partition the days fall in.
PARTITIONS=$(python3 -c '
import datetime, sys
d0, days = int(sys.argv[1]), int(sys.argv[2])
utc = datetime.timezone.utc
print(" ".join(sorted({datetime.datetime.fromtimestamp(d0 + i * 86400, utc).strftime("%Y_%m") for i in range(days)})))' "$DAY0" "$DAYS")
for p in $PARTITIONS; do
  curl -sf "$VM/internal/force_merge?partition_prefix=$p" >/dev/null
done
compact_s=$(since "$t")
report_load victoriametrics "$WORK/vm" "$VM_PID"
time_query victoriametrics hourly -G "$VM/api/v1/query_range" -d nocache=1 \
  --data-urlencode 'query=avg by (hostname) (avg_over_time({__name__="cpu.usage_user"}[1h]))' \
  -d "start=$(( DAY0 + 3600 ))" -d "end=$(( END + 1 ))" -d step=3600
time_query victoriametrics daily -G "$VM/api/v1/query_range" -d nocache=1 \
  --data-urlencode 'query=max(max_over_time({__name__="cpu.usage_user"}[1d]))' \
  -d "start=$(( DAY0 + 86400 ))" -d "end=$(( END + 1 ))" -d step=86400

# --- Every Sundial answer against VictoriaMetrics'.
python3 - "$WORK/answers" "$HOSTS" "$DAYS" <<'PY'
import json, os, sys
d, hosts, days = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
load = lambda n: json.load(open(os.path.join(d, n)))
def vm(name, shift):  # host (or "") -> {bucket start s: value}
    out = {}
    for r in load(f"victoriametrics-{name}")["data"]["result"]:
        out[r["metric"].get("hostname", "")] = {t - shift: float(v) for t, v in r["values"]}
    return out
def opentsdb(name):
    return {s["tags"].get("hostname", ""): {int(t): v for t, v in s["dps"].items()}
            for s in load(f"sundial-opentsdb-{name}")}
def v1(label, name):
    out = {}
    for g in load(f"{label}-{name}")["results"][0]["groups"]:
        host = next((i["tags"]["hostname"] for i in g["groupInfos"] if "tags" in i), "")
        out[host] = {row[0] // 1000: row[1] for row in g["values"]}
    return out
for name, shift, series, buckets in (("hourly", 3600, hosts, days * 24), ("daily", 86400, 1, days)):
    want = vm(name, shift)
    assert len(want) == series and all(len(b) == buckets for b in want.values()), f"{name}: VictoriaMetrics' answer has the wrong shape"
    for label, got in (("opentsdb", opentsdb(name)), ("v1", v1("sundial-v1", name)), ("v1-raw", v1("sundial-v1-raw", name))):
        assert got.keys() == want.keys(), f"{label} {name}: other series"
        for host, buckets_want in want.items():
            g = got[host]
            assert g.keys() == buckets_want.keys(), f"{label} {name} {host}: other buckets"
            for t, w in buckets_want.items():
                assert abs(g[t] - w) <= 1e-9 * max(abs(w), 1.0), f"{label} {name} {host} {t}: {g[t]} vs {w}"
    print(f"# {name}: OpenTSDB, /v1 and raw /v1 answers equal VictoriaMetrics' ({series} series x {buckets} buckets)", file=sys.stderr)
PY
