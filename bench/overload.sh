#!/usr/bin/env bash
# Overload run (issue 14): 64 connections post /api/put bodies back to back
# for a minute against a release server with its default limits, after a
# 4-connection run that measures what the server accepts when not
# overloaded. Prints both reports (accepted points/s, busy rate, p50/p99 of
# accepted writes, RSS over time) as JSON lines.
#
#   bench/overload.sh [--seconds S] [--connections C] [--batch B] [--config FILE]
#
# --config: a server config file (e.g. smaller [limits] to see busy answers).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/peers.sh
SECONDS_RUN=60 CONNS=64 BATCH=1000 CONFIG=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_RUN=$2; shift 2;; --connections) CONNS=$2; shift 2;;
    --batch) BATCH=$2; shift 2;; --config) CONFIG=(--config "$(realpath "$2")"); shift 2;;
    *) echo "unknown argument $1" >&2; exit 2;;
  esac
done
bench_start overload

start() { # data dir -> pid, port on fd
  "$BIN/sundial" serve "${CONFIG[@]}" --data-dir "$1" --listen 127.0.0.1:0 >"$WORK/out" 2>"$WORK/err" &
  PID=$!
  for _ in $(seq 1 600); do
    PORT=$(sed -n 's/^sundial listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$WORK/out")
    [ -n "$PORT" ] && return 0
    sleep 0.1
  done
  echo "server did not start" >&2; exit 1
}

start "$WORK/base"
echo "# capacity: 4 connections, ${SECONDS_RUN}s / 4" >&2
"$BIN/sundial-overload" --url "http://127.0.0.1:$PORT" --connections 4 \
  --seconds $((SECONDS_RUN / 4)) --batch "$BATCH" --pid "$PID"
kill "$PID"; wait "$PID" || true

start "$WORK/over"
echo "# overload: $CONNS connections, ${SECONDS_RUN}s" >&2
"$BIN/sundial-overload" --url "http://127.0.0.1:$PORT" --connections "$CONNS" \
  --seconds "$SECONDS_RUN" --batch "$BATCH" --pid "$PID"
kill "$PID"; wait "$PID" || true
