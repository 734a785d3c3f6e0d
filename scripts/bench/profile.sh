#!/usr/bin/env bash
# `make bench-profile`: where a replicated record's CPU goes. Starts the 3-node mTLS Raft cluster
# of `make bench-raft`, and for each load in LOADS samples the three node processes with
# `perf record` (call graphs from DWARF unwinding) while `proglog produce --bench` runs against
# the leader. Prints, per load, the throughput and one table: the share of the nodes' CPU samples
# in each part of the stack (scripts/bench/profile-categories.awk says which frames count as
# which), for the leader and the followers apart. The raw profiles stay in OUT.
#
# Environment:
#   LOADS     loads to profile, each cN (N concurrent unary clients) or stream (default "c1 c128")
#   RECORDS   records per cN run (default 20000; c1 writes a tenth); STREAM_RECORDS (200000)
#   SIZE      record size in bytes (default 1024)
#   FREQ      samples per second per CPU (default 499)
#   OUT       where perf.data files and reports are kept (default a new /tmp/proglog-profile.*)
#   BIN_DIR   the ProgLog binaries (default $CARGO_TARGET_DIR/release; `make release`)
# Needs `perf` (Debian: linux-perf) and kernel.perf_event_paranoid <= 2 or root.
# shellcheck disable=SC2046 # $(conn ...) is split into flags on purpose
set -euo pipefail

BIN_DIR=${BIN_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/proglog/target}/release}
PROGLOG=$BIN_DIR/proglog
NODE=$BIN_DIR/proglog-node
LOADS=${LOADS:-c1 c128}
RECORDS=${RECORDS:-20000}
STREAM_RECORDS=${STREAM_RECORDS:-200000}
SIZE=${SIZE:-1024}
FREQ=${FREQ:-499}
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/proglog-profile.XXXXXX")}
mkdir -p "$OUT"
SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/proglog-profile-cluster.XXXXXX")
CERTS=$WORK/certs
pids=()
# shellcheck source=scripts/bench/lib.sh
source "$SCRIPT_DIR/lib.sh"

command -v perf >/dev/null || { echo "profile.sh: perf is not installed (Debian: linux-perf)" >&2; exit 1; }
[[ -x $NODE && -x $PROGLOG ]] || { echo "profile.sh: no binaries in $BIN_DIR; run make release" >&2; exit 1; }

cleanup() {
  if ((${#pids[@]})); then kill -TERM "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

"$PROGLOG" certs --out "$CERTS" >/dev/null
# The nodes' worker threads as compare.sh runs them: each node's share of the machine's CPUs
# (override with SERVER_THREADS, "auto" for one per CPU).
DEFAULT_SERVER_THREADS=$(machine_share)
server_threads_init
for i in 0 1 2; do launch_node "$i" $((8511 + i)) true; done
for i in 0 1 2; do wait_node_healthy "$i" $((8511 + i)); done
"$PROGLOG" $(conn 127.0.0.1:8511) cluster init >/dev/null
for i in 1 2; do retry "$PROGLOG" $(conn 127.0.0.1:8511) cluster add "127.0.0.1:$((8512 + i - 1))"; done
retry "$PROGLOG" $(conn 127.0.0.1:8511) produce warm-up
leader=$("$PROGLOG" $(conn 127.0.0.1:8511) servers | awk '$0 ~ /leader/ { print $2; exit }')
leader_index=$((${leader##*:} - 8511))
echo "# Profile of a 3-node cluster, $SIZE-byte records, perf at $FREQ Hz; leader node-$leader_index; raw data in $OUT"

for load in $LOADS; do
  case $load in
    c1) args=(--bench $((RECORDS / 10)) --concurrency 1 --mode unary) ;;
    c[0-9]*) args=(--bench "$RECORDS" --concurrency "${load#c}" --mode unary) ;;
    stream) args=(--bench "$STREAM_RECORDS" --concurrency 1 --mode stream) ;;
    *) echo "profile.sh: unknown load '$load' (cN or stream)" >&2; exit 1 ;;
  esac
  data=$OUT/$load.perf.data
  perf record -q -F "$FREQ" --call-graph dwarf,16384 -p "$(IFS=,; echo "${pids[*]}")" -o "$data" 2>"$OUT/$load.perf.log" &
  perf_pid=$!
  sleep 1 # perf attaches to every thread before the load starts
  result=$("$PROGLOG" $(conn "$leader") produce "${args[@]}" --size "$SIZE")
  kill -INT "$perf_pid"
  wait "$perf_pid" || true
  echo
  echo "## $load: $result"
  perf script --no-inline -i "$data" -F pid,ip,sym,dso 2>/dev/null |
    awk -v leader="${pids[$leader_index]}" -f "$SCRIPT_DIR/profile-categories.awk" | tee "$OUT/$load.categories.md"
done
