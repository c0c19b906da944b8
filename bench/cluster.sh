#!/usr/bin/env bash
# The cost of the cluster's hops, on loopback: the data set of ingest.sh
# loaded into a single node and into a cluster (three ingesters, a router
# and a querier, on PostgreSQL 15, nats-server -js and the S3 test server
# sundial-s3), then the query set of query.sh (raw, hourly, max10 through
# Baidu's /v1 and OpenTSDB's /api/query; raw and hourly through SQL) timed
# on the single node and three ways on the cluster: through the router,
# which reads the blocks itself (docs/cluster.md, "Queriers read the
# blocks"), while every point is still in the owners' heads ("heads") and
# after every shard is checkpointed ("blocks"), and through a querier
# without the object store, whose owners run the per-series half
# ("owners"). Every answer of the cluster is compared with the single
# node's (the run fails on a difference). On 2 cores the cluster cannot
# be faster: the point is what each hop costs.
#
#   bench/cluster.sh [--hours H] [--hosts N] [--runs R] [--shards S]
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/peers.sh
HOURS=6 HOSTS=100 RUNS=15 SHARDS=16
while [ $# -gt 0 ]; do
  case "$1" in
    --hours) HOURS=$2; shift 2;; --hosts) HOSTS=$2; shift 2;;
    --runs) RUNS=$2; shift 2;; --shards) SHARDS=$2; shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sundial-target}"
cargo build --release --locked -p sundial-server -p sundial-testkit >&2
BIN="$CARGO_TARGET_DIR/release"
PG_BIN=${SUNDIAL_POSTGRES_BIN:-/usr/lib/postgresql/15/bin}
NATS=${SUNDIAL_NATS:-/usr/sbin/nats-server}
WORK=$(mktemp -d /tmp/sundial-cbench.XXXXXX)
chmod 755 "$WORK"
trap 'pkill -P $$ 2>/dev/null || true; sleep 1; rm -rf "$WORK"' EXIT
START=1700000000
END=$(( START + HOURS * 3600 - 1 ))

# PostgreSQL refuses root: run it as its own user (scripts/test makes it).
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u sundial-pg -- "$@"; else "$@"; fi; }
mkdir -p "$WORK/pg"
[ "$(id -u)" -eq 0 ] && chown sundial-pg "$WORK/pg"
as_pg "$PG_BIN/initdb" --auth=trust --no-sync -U sundial -D "$WORK/pg/data" >/dev/null
as_pg "$PG_BIN/postgres" -D "$WORK/pg/data" -p 15432 -k "$WORK/pg" \
  -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200 >"$WORK/pg.log" 2>&1 &
for _ in $(seq 1 200); do grep -q "ready to accept connections" "$WORK/pg.log" && break; sleep 0.05; done
"$NATS" -js -a 127.0.0.1 -p 14222 -sd "$WORK/nats" >"$WORK/nats.log" 2>&1 &
"$BIN/sundial-s3" --root "$WORK/s3" --bucket cluster >"$WORK/s3.log" 2>&1 &
for _ in $(seq 1 200); do grep -q "s3 listening on" "$WORK/s3.log" && break; sleep 0.05; done
S3_ADDR=$(sed -n 's/^s3 listening on //p' "$WORK/s3.log")
for _ in $(seq 1 200); do grep -q "Server is ready" "$WORK/nats.log" && break; sleep 0.05; done

cat >"$WORK/cluster.toml" <<TOML
[cluster]
postgres_url = "postgres://sundial@127.0.0.1:15432/postgres"
nats_url = "nats://127.0.0.1:14222"
shards = $SHARDS
listen = "127.0.0.1:0"
secret = "bench"
object_store = "s3://cluster/bench"
object_store_options = { aws_endpoint_url = "http://$S3_ADDR", aws_access_key_id = "sundial-test", aws_secret_access_key = "sundial-test-secret", aws_region = "us-east-1", aws_allow_http = "true" }
TOML
serve() { # name port extra-args...
  local name=$1 port=$2; shift 2
  "$BIN/sundial" serve --data-dir "$WORK/$name" --listen 127.0.0.1:"$port" "$@" \
    >"$WORK/$name.log" 2>&1 &
  wait_http "http://127.0.0.1:$port/api/version" >/dev/null
}
serve single 14242
for i in 1 2 3; do
  serve "i$i" $(( 14250 + i )) --config "$WORK/cluster.toml" --role ingester
done
serve router 14260 --config "$WORK/cluster.toml" --role router
# A querier that cannot reach the object store leaves reads to the owners.
grep -v '^object_store' "$WORK/cluster.toml" >"$WORK/owners.toml"
serve owners 14261 --config "$WORK/owners.toml" --role querier
# Ownership settles (shards move as the ingesters join): every shard owned,
# each ingester holding some, the same for 3 s.
owned() { curl -sf "http://127.0.0.1:$1/metrics" | sed -n 's/^sundial_cluster_shards_owned //p'; }
last="" same=0
for _ in $(seq 1 600); do
  now="$(owned 14251) $(owned 14252) $(owned 14253)"
  sum=0; for n in $now; do sum=$(( sum + n )); done
  if [ "$sum" -eq "$SHARDS" ] && [[ " $now " != *" 0 "* ]] && [ "$now" = "$last" ]; then
    same=$(( same + 1 )); [ "$same" -ge 30 ] && break
  else
    same=0
  fi
  last=$now; sleep 0.1
done
echo "# shards owned by the ingesters: $now" >&2

load() { # label url
  "$BIN/sundial-load" --url "$2" --hours "$HOURS" --hosts "$HOSTS" --start "$START" --label "$1"
}
echo "# cluster: ${HOSTS} hosts x 10 metrics, ${HOURS} h at 10 s; $SHARDS shards; median of ${RUNS} runs" >&2
load single http://127.0.0.1:14242
load cluster http://127.0.0.1:14260

mkdir -p "$WORK/times"
time_query() { # label name curl-args...
  local label=$1 name=$2; shift 2
  curl -sf -o "$WORK/answer-$label-$name" "$@"
  grep -qxF "$name" "$WORK/times/names" 2>/dev/null || echo "$name" >>"$WORK/times/names"
  for _ in $(seq 1 "$RUNS"); do
    curl -sf -o /dev/null -w '%{time_total}\n' "$@" >>"$WORK/times/$label $name"
  done
}
queries() { # label port
  local label=$1 port=$2 s=$(( START * 1000 )) e=$(( END * 1000 + 999 ))
  local url="http://127.0.0.1:$port/v1/datapoint?query"
  q() { time_query "$label" "v1-$1" -XPUT -H 'Content-Type: application/json' "$url" -d "{\"queries\":[$2]}"; }
  q raw "{\"metric\":\"cpu.usage_user\",\"filters\":{\"start\":$s,\"end\":$e,\"tags\":{\"hostname\":[\"host_0\"]}}}"
  q hourly "{\"metric\":\"cpu.usage_user\",\"filters\":{\"start\":$s,\"end\":$e},\"groupBy\":[{\"name\":\"Tag\",\"tags\":[\"hostname\"]}],\"aggregators\":[{\"name\":\"Avg\",\"sampling\":\"1 hour\"}]}"
  q max10 "{\"metric\":\"cpu.usage_user\",\"filters\":{\"start\":$s,\"end\":$e},\"aggregators\":[{\"name\":\"Max\",\"sampling\":\"10 minutes\"}]}"
  local api="http://127.0.0.1:$port/api/query"
  o() { time_query "$label" "opentsdb-$1" -G "$api" -d "start=$START" -d "end=$END" --data-urlencode "m=$2"; }
  o raw "none:cpu.usage_user{hostname=host_0}"
  o hourly "avg:1h-avg:cpu.usage_user{hostname=*}"
  o max10 "max:10m-max:cpu.usage_user"
  local sql="http://127.0.0.1:$port/v1/row"
  r() { time_query "$label" "sql-$1" -XPUT -H 'Content-Type: text/plain' "$sql" --data-binary "$2"; }
  r raw "SELECT * FROM \"cpu.usage_user\" WHERE hostname = 'host_0' AND time >= $s AND time <= $e"
  r hourly "SELECT hostname, time_bucket(time, '1 hour') AS b, avg(value) FROM \"cpu.usage_user\" WHERE time >= $s AND time <= $e GROUP BY hostname, b ORDER BY hostname, b"
}
queries single 14242
queries heads 14260
# Every shard checkpointed and its blocks merged, and the single node's
# too (the same blocks: sums over whole chunks add up alike).
curl -sf -XPOST http://127.0.0.1:14260/admin/compact >/dev/null
curl -sf -XPOST http://127.0.0.1:14242/admin/compact >/dev/null
queries compacted 14242
queries blocks 14260
queries owners 14261
python3 - "$WORK" <<'PY'
import json, os, statistics, sys
work = sys.argv[1]
times = os.path.join(work, "times")
# Each cluster way against the single node with its points in the same
# place: its head before the compaction, its blocks after.
against = {"heads": "single", "blocks": "compacted", "owners": "compacted"}
failed = False
def median(label, name):
    t = [float(x) * 1000 for x in open(os.path.join(times, f"{label} {name}"))]
    return statistics.median(t)
def answer(label, name):
    return json.load(open(os.path.join(work, f"answer-{label}-{name}")))
def close(a, b):
    # Sums over whole chunks add in another order where blocks differ
    # (a shard's blocks are not the single node's): the last bits of a
    # double may differ, nothing more.
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and \
            abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1.0)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k]) for k in a)
    return a == b
for name in open(os.path.join(times, "names")).read().split():
    row = {"query": name}
    for label in ("single", "compacted"):
        row[f"{label}_ms"] = round(median(label, name), 2)
    for label, base in against.items():
        mine, theirs = answer(label, name), answer(base, name)
        same = mine == theirs
        failed |= not close(mine, theirs)
        ms = median(label, name)
        row[f"{label}_ms"] = round(ms, 2)
        row[f"{label}_ratio"] = round(ms / median(base, name), 2)
        row[f"{label}_same"] = same
    # The two cluster ways read the same blocks: exactly the same answer.
    row["blocks_is_owners"] = answer("blocks", name) == answer("owners", name)
    failed |= not row["blocks_is_owners"]
    print(json.dumps(row))
sys.exit(1 if failed else 0)
PY
