#!/usr/bin/env bash
# `make bench-raft`: 3-node replicated, durable produce throughput and latency over mTLS on
# loopback (1, 16, 128 concurrent unary clients, and streaming), the same loads against one
# single (non-Raft) node for the ratio, and leader failover time. Prints a Markdown table for
# docs/BENCHMARKS.md ("Replication").
#
# Environment: RECORDS (per run, default 20000; the 1-client unary run uses a tenth), SIZE
# (bytes per record, default 1024, as in the single-node section), STREAM_RECORDS (default
# 200000), FAILOVERS (default 3).
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN_DIR=${BIN_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/proglog/target}/release}
PROGLOG=$BIN_DIR/proglog
NODE=$BIN_DIR/proglog-node
RECORDS=${RECORDS:-20000}
SIZE=${SIZE:-1024}
STREAM_RECORDS=${STREAM_RECORDS:-200000}
FAILOVERS=${FAILOVERS:-3}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/proglog-bench-raft.XXXXXX")
CERTS=$WORK/certs
pids=()

cleanup() {
  if ((${#pids[@]})); then kill -TERM "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

"$PROGLOG" certs --out "$CERTS" >/dev/null
conn() { echo --addr "$1" --ca "$CERTS/ca.pem" --cert "$CERTS/root.pem" --key "$CERTS/root-key.pem"; }

# start_node INDEX PORT RAFT(true|false)
start_node() {
  local i=$1 port=$2 raft=$3
  mkdir -p "$WORK/node-$i"
  "$NODE" --data-dir "$WORK/node-$i" --bind-addr "127.0.0.1:$port" --advertise-addr "127.0.0.1:$port" \
    --metrics-addr "127.0.0.1:$((port + 1000))" --ordinal "$i" \
    --tls-cert "$CERTS/node.pem" --tls-key "$CERTS/node-key.pem" --tls-ca "$CERTS/ca.pem" \
    --acl-file "$CERTS/acl.csv" --raft "$raft" >>"$WORK/node-$i.log" 2>&1 &
  pids[$i]=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$((port + 1000))/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "node $i did not start; see $WORK/node-$i.log" >&2
  exit 1
}

retry() { for _ in $(seq 1 50); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; "$@"; }

bench_row() { # LABEL ADDR CONCURRENCY MODE
  local out records=$RECORDS
  if [[ $4 == stream ]]; then records=$STREAM_RECORDS; elif [[ $3 == 1 ]]; then records=$((RECORDS / 10)); fi
  # shellcheck disable=SC2046
  out=$("$PROGLOG" $(conn "$2") produce --bench "$records" --size "$SIZE" --concurrency "$3" --mode "$4")
  echo "| $1 | $3 | $4 | $out |"
}

echo "## single node (no Raft), $RECORDS x $SIZE B records"
start_node 9 8419 false
for c in 1 16 128; do bench_row single 127.0.0.1:8419 "$c" unary; done
bench_row single 127.0.0.1:8419 1 stream
kill -TERM "${pids[9]}"; wait "${pids[9]}" 2>/dev/null || true; unset 'pids[9]'

echo "## 3-node Raft cluster"
for i in 0 1 2; do start_node "$i" $((8411 + i)) true; done
# shellcheck disable=SC2046
"$PROGLOG" $(conn 127.0.0.1:8411) cluster init >/dev/null
for i in 1 2; do
  # shellcheck disable=SC2046
  retry "$PROGLOG" $(conn 127.0.0.1:8411) cluster add "127.0.0.1:$((8411 + i))"
done
for c in 1 16 128; do bench_row raft-3 127.0.0.1:8411 "$c" unary; done
bench_row raft-3 127.0.0.1:8411 1 stream
bench_row "raft-3 via follower" 127.0.0.1:8412 16 unary

echo "## leader failover (kill -9 the leader, time until another node accepts a produce)"
for run in $(seq 1 "$FAILOVERS"); do
  leader_line=$("$PROGLOG" $(conn 127.0.0.1:8411) servers 2>/dev/null | grep -w leader || true)
  [[ -z $leader_line ]] && leader_line=$("$PROGLOG" $(conn 127.0.0.1:8412) servers | grep -w leader)
  leader_addr=$(echo "$leader_line" | awk '{print $2}')
  leader_port=${leader_addr##*:}
  leader_index=$((leader_port - 8411))
  other=$((8411 + (leader_index + 1) % 3))
  start=$(date +%s%N)
  kill -KILL "${pids[$leader_index]}"
  wait "${pids[$leader_index]}" 2>/dev/null || true
  until "$PROGLOG" $(conn "127.0.0.1:$other") --connect-timeout 1s produce "failover-$run" >/dev/null 2>&1; do
    sleep 0.01
  done
  end=$(date +%s%N)
  echo "failover $run: leader $leader_addr killed; produce accepted via 127.0.0.1:$other after $(((end - start) / 1000000)) ms"
  start_node "$leader_index" "$leader_port" true
  sleep 2
done
