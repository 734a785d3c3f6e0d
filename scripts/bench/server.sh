#!/usr/bin/env bash
# `make bench-server`: single-node gRPC benchmarks over mutual TLS on loopback, durable (one
# fsync per group commit before any acknowledgement). Prints one line per run; the figures and
# this command go to docs/BENCHMARKS.md ("Single node server").
#
#   - unary Produce with 1, 16 and 128 concurrent clients (1 KiB records),
#   - ProduceStream (1 and 4 streams) and ProduceBatch (256 records per request),
#   - ConsumeStream throughput over every 1 KiB record, Consume latency p50/p99,
#   - loopback TLS bandwidth: ConsumeStream of 1 MiB records (framing overhead is negligible),
#   - fsync cost: mean and count of the node's fsyncs (from its /metrics) during the unary run.
#
# Environment: SIZE (record bytes, default 1024), SCALE (multiplies record counts, default 1),
# PROGLOG_BENCH_DIR (where the log lives; default ~/.cache/proglog/bench, i.e. the real disk).
set -euo pipefail

BIN_DIR=${BIN_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/proglog/target}/release}
PROGLOG=$BIN_DIR/proglog
NODE=$BIN_DIR/proglog-node
SIZE=${SIZE:-1024}
SCALE=${SCALE:-1}
BASE=${PROGLOG_BENCH_DIR:-$HOME/.cache/proglog/bench}
PORT=${PORT:-8430}
METRICS_PORT=$((PORT + 1000))
mkdir -p "$BASE"
WORK=$(mktemp -d "$BASE/server.XXXXXX")
CERTS=$WORK/certs
node_pid=

cleanup() {
  if [[ -n $node_pid ]]; then kill -TERM "$node_pid" 2>/dev/null || true; wait "$node_pid" 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

"$PROGLOG" certs --out "$CERTS" >/dev/null
CONN=(--addr "127.0.0.1:$PORT" --ca "$CERTS/ca.pem" --cert "$CERTS/root.pem" --key "$CERTS/root-key.pem")

"$NODE" --data-dir "$WORK/data" --bind-addr "127.0.0.1:$PORT" --metrics-addr "127.0.0.1:$METRICS_PORT" \
  --tls-cert "$CERTS/node.pem" --tls-key "$CERTS/node-key.pem" --tls-ca "$CERTS/ca.pem" \
  --acl-file "$CERTS/acl.csv" --max-record-size $((1024 * 1024)) --max-message-size $((8 * 1024 * 1024)) \
  >"$WORK/node.log" 2>&1 &
node_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$METRICS_PORT/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://127.0.0.1:$METRICS_PORT/readyz" >/dev/null || { cat "$WORK/node.log" >&2; exit 1; }

echo "machine: $(nproc) cpus, $(uname -r); log on $(df -hT "$WORK" | awk 'NR==2 {print $1, $2}')"

metric() { # NAME: value of an unlabelled metric line
  curl -fsS "http://127.0.0.1:$METRICS_PORT/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}
n() { echo $(($1 * SCALE)); }

fsyncs_before=$(metric proglog_log_fsync_duration_seconds_count)
fsync_sum_before=$(metric proglog_log_fsync_duration_seconds_sum)
"$PROGLOG" "${CONN[@]}" produce --bench "$(n 3000)" --concurrency 1 --size "$SIZE" --mode unary
fsyncs=$(metric proglog_log_fsync_duration_seconds_count)
fsync_sum=$(metric proglog_log_fsync_duration_seconds_sum)
awk -v c0="$fsyncs_before" -v s0="$fsync_sum_before" -v c1="$fsyncs" -v s1="$fsync_sum" \
  'BEGIN { printf "fsync during unary x1: %d fsyncs, mean %.3f ms\n", c1 - c0, (s1 - s0) / (c1 - c0) * 1e3 }'
"$PROGLOG" "${CONN[@]}" produce --bench "$(n 30000)" --concurrency 16 --size "$SIZE" --mode unary
"$PROGLOG" "${CONN[@]}" produce --bench "$(n 60000)" --concurrency 128 --size "$SIZE" --mode unary
"$PROGLOG" "${CONN[@]}" produce --bench "$(n 300000)" --concurrency 1 --size "$SIZE" --mode stream
"$PROGLOG" "${CONN[@]}" produce --bench "$(n 300000)" --concurrency 4 --size "$SIZE" --mode stream
"$PROGLOG" "${CONN[@]}" produce --bench "$(n 300000)" --concurrency 4 --size "$SIZE" --mode batch --batch-size 256
records=$(metric proglog_records_appended_total)
commits=$(metric proglog_log_commit_batch_records_count)
echo "group commit so far: $records records in $commits fsyncs"

"$PROGLOG" "${CONN[@]}" consume --bench "$records" --mode stream
"$PROGLOG" "${CONN[@]}" consume --bench "$(n 20000)" --mode unary --concurrency 1
"$PROGLOG" "${CONN[@]}" consume --bench "$(n 60000)" --mode unary --concurrency 16

# Loopback TLS bandwidth: large records make gRPC/record overhead negligible.
big_from=$records
"$PROGLOG" "${CONN[@]}" produce --bench "$(n 512)" --concurrency 2 --size $((1024 * 1024)) --mode batch --batch-size 4 >/dev/null
"$PROGLOG" "${CONN[@]}" consume --from "$big_from" --bench "$(n 512)" --mode stream |
  sed 's/^consume stream x1/loopback TLS bandwidth (ConsumeStream of 1 MiB records)/'
