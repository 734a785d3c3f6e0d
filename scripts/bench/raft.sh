#!/usr/bin/env bash
# `make bench-raft`: 3-node replicated, durable produce throughput and latency over mTLS on
# loopback (1, 16, 128 concurrent unary clients, and streaming), the same loads against one
# single (non-Raft) node for the ratio, and leader failover time. Prints a Markdown table for
# docs/BENCHMARKS.md ("Replication").
#
# Each row also gives the nodes' CPU time per 1 000 records (all nodes, and the busiest one),
# read from /proc.
#
# Environment: RECORDS (per run, default 20000; the 1-client unary run uses a tenth), SIZE
# (bytes per record, default 1024, as in the single-node section), STREAM_RECORDS (default
# 200000), FAILOVERS (default 3), NODE_CPUS (see below), BIN_DIR (binaries to run).
# shellcheck disable=SC2046 # $(conn ...) is split into flags on purpose
set -euo pipefail

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
# shellcheck source=scripts/bench/lib.sh
source "$(dirname "$0")/lib.sh"

cleanup() {
  if ((${#pids[@]})); then kill -TERM "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; fi
  rm -rf "$WORK"
  if [[ -n ${CPU_CGROUP_ROOT:-} ]]; then rmdir "$CPU_CGROUP_ROOT"/proglog-bench-* 2>/dev/null || true; fi
}
trap cleanup EXIT

"$PROGLOG" certs --out "$CERTS" >/dev/null
# conn ADDR: the connection flags, word-split on purpose where used (paths have no spaces).

# NODE_CPUS (e.g. 0.5): run every node in its own cgroup capped at that many CPUs, so that the
# single node and each cluster node get the same CPU budget, as on separate machines. Without
# it the three cluster nodes share the machine's CPUs, which the single node has to itself.
cpu_caps_init
# SERVER_THREADS: the nodes' --worker-threads (see lib.sh's server_threads_init): with NODE_CPUS,
# that many rounded up, as a pod with that CPU limit gets; otherwise each node's default.
server_threads_init

# start_node INDEX PORT RAFT(true|false)
start_node() {
  launch_node "$1" "$2" "$3"
  cap_cpu_group "proglog-bench-$1" "${pids[$1]}"
  wait_node_healthy "$1" "$2"
}


# CPU ticks (user + system) used so far by each running node process, from /proc: "pid ticks".
nodes_cpu() {
  local pid
  for pid in "${pids[@]}"; do
    [[ -r /proc/$pid/stat ]] && echo "$pid $(awk '{print $14 + $15}' "/proc/$pid/stat")"
  done
  return 0
}

bench_row() { # LABEL ADDR CONCURRENCY MODE
  local out records=$RECORDS before after
  if [[ $4 == stream ]]; then records=$STREAM_RECORDS; elif [[ $3 == 1 ]]; then records=$((RECORDS / 10)); fi
  before=$(nodes_cpu)
  # shellcheck disable=SC2046
  out=$("$PROGLOG" $(conn "$2") produce --bench "$records" --size "$SIZE" --concurrency "$3" --mode "$4")
  after=$(nodes_cpu)
  # Node CPU per 1 000 records, all nodes together and the busiest one (the leader): what a
  # record costs, independent of how busy the shared machine was.
  echo "| $1 | $3 | $4 | $out | $(printf '%s\n%s\n' "$before" "$after" | awk -v hz="$(getconf CLK_TCK)" -v n="$records" '
    seen[$1]++ { used = $2 - first[$1]; total += used; if (used > busiest) busiest = used; next }
    { first[$1] = $2 }
    END { ms = 1000 / hz * 1000 / n
          printf "nodes %.1f CPU-ms per 1000 records, busiest node %.1f", total * ms, busiest * ms }') |"
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
  # One try per loop turn (the CLI would otherwise retry with its own backoff, which is then
  # what gets measured).
  until "$PROGLOG" $(conn "127.0.0.1:$other") --connect-timeout 1s --max-attempts 1 produce "failover-$run" >/dev/null 2>&1; do
    sleep 0.01
  done
  end=$(date +%s%N)
  echo "failover $run: leader $leader_addr killed; produce accepted via 127.0.0.1:$other after $(((end - start) / 1000000)) ms"
  start_node "$leader_index" "$leader_port" true
  sleep 2
done
