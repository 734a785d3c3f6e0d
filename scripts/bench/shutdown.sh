#!/usr/bin/env bash
# Shutdown and hand-over times (issue 16): a local 3-node Raft cluster of release binaries on
# loopback; SIGTERM to exit of an idle follower, an idle leader and a leader under a steady
# produce load, with the Raft term before and after each (a follower's exit must not change
# it; a leader's hand-over raises it by one). The stopped node is restarted between runs.
#
# Under load, `proglog produce` loops against every node count each request's outcome: "ok",
# "retryable" (refused before it was appended — the message says the produce was not executed —
# or the node could not be reached: the client library retries those itself) and "other"
# (anything else; printed). Targets: idle < 1 s, leader under load < 2 s, "other" 0.
#
# Environment: RUNS (per scenario, default 3), LOAD_LOOPS (produce loops per node, default 2),
# BIN_DIR (binaries to run; default the release build), KEEP (keep the work directory and logs).
# shellcheck disable=SC2046 # $(conn ...) is split into flags on purpose
set -euo pipefail

BIN_DIR=${BIN_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/proglog/target}/release}
PROGLOG=$BIN_DIR/proglog
NODE=$BIN_DIR/proglog-node
RUNS=${RUNS:-3}
LOAD_LOOPS=${LOAD_LOOPS:-2}
BASE=${BASE_PORT:-8611}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/proglog-bench-shutdown.XXXXXX")
CERTS=$WORK/certs
pids=()
loaders=()
# shellcheck source=scripts/bench/lib.sh
source "$(dirname "$0")/lib.sh"

cleanup() {
  if ((${#loaders[@]})); then kill "${loaders[@]}" 2>/dev/null || true; fi
  if ((${#pids[@]})); then kill -TERM "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; fi
  if [[ -n ${KEEP:-} ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

"$PROGLOG" certs --out "$CERTS" >/dev/null
addr() { echo "127.0.0.1:$((BASE + $1))"; }

start_node() { # INDEX
  launch_node "$1" $((BASE + $1)) true
  wait_node_healthy "$1" $((BASE + $1))
}


# status INDEX: "ROLE TERM" from `cluster status` (first line: node ID (ROLE) term N leader ID).
status() { "$PROGLOG" $(conn "$(addr "$1")") cluster status 2>/dev/null | awk 'NR == 1 { gsub(/[()]/, "", $3); print $3, $5 }'; }

# leader: the index of the node that leads (waits for one).
leader() {
  local i
  for _ in $(seq 1 100); do
    for i in 0 1 2; do
      [[ -n ${pids[$i]:-} ]] || continue
      [[ $(status "$i") == leader* ]] && { echo "$i"; return 0; }
    done
    sleep 0.1
  done
  echo "no leader" >&2
  exit 1
}

term_of() { status "$1" | awk '{ print $2 }'; }

# stop INDEX: SIGTERM, wait for the exit; sets ms (not printed: `wait` needs this shell).
stop() {
  local i=$1 start end
  start=$(date +%s%N)
  kill -TERM "${pids[$i]}"
  wait "${pids[$i]}" 2>/dev/null || true
  end=$(date +%s%N)
  unset 'pids[i]'
  ms=$(((end - start) / 1000000))
}

# wait_caught_up INDEX: until the restarted node is a follower at the leader's commit.
wait_caught_up() {
  for _ in $(seq 1 100); do
    [[ $(status "$1") == follower* ]] && { sleep 0.5; return 0; }
    sleep 0.1
  done
}

# load_loop INDEX OUT: produce through node INDEX until killed, one outcome per line in OUT.
load_loop() {
  local n=0 err
  while :; do
    if err=$("$PROGLOG" $(conn "$(addr "$1")") --connect-timeout 1s produce "load-$1-$BASHPID-$n" 2>&1 >/dev/null); then
      echo ok
    elif [[ $err == *"not executed"* || $err == *"onnect"* || $err == *"transport error"* ]]; then
      echo retryable
    else
      echo "other ${err//$'\n'/ }"
    fi >>"$2"
    n=$((n + 1))
  done
}

for i in 0 1 2; do start_node "$i"; done
"$PROGLOG" $(conn "$(addr 0)") cluster init >/dev/null
for i in 1 2; do retry "$PROGLOG" $(conn "$(addr 0)") cluster add "$(addr "$i")"; done
retry "$PROGLOG" $(conn "$(addr 0)") produce warm-up

echo "| scenario | run | SIGTERM to exit (ms) | term before → after | produces ok / retryable / other |"
echo "|---|---|---|---|---|"
for run in $(seq 1 "$RUNS"); do
  l=$(leader); f=$(((l + 1) % 3)); before=$(term_of "$l")
  stop "$f"; sleep 2
  echo "| idle follower | $run | $ms | $before → $(term_of "$l") | - |"
  start_node "$f"; wait_caught_up "$f"
done
for run in $(seq 1 "$RUNS"); do
  l=$(leader); before=$(term_of "$l")
  stop "$l"
  n=$(leader)
  echo "| idle leader | $run | $ms | $before → $(term_of "$n") | - |"
  start_node "$l"; wait_caught_up "$l"
done
for run in $(seq 1 "$RUNS"); do
  l=$(leader); before=$(term_of "$l")
  out=$WORK/load-$run; : >"$out"
  loaders=()
  for i in 0 1 2; do
    for _ in $(seq 1 "$LOAD_LOOPS"); do load_loop "$i" "$out" & loaders+=($!); done
  done
  sleep 2
  stop "$l"
  sleep 2
  kill "${loaders[@]}" 2>/dev/null || true; wait "${loaders[@]}" 2>/dev/null || true; loaders=()
  n=$(leader)
  counts=$(awk '{ c[$1]++ } END { printf "%d / %d / %d", c["ok"], c["retryable"], c["other"] }' "$out")
  echo "| leader under load | $run | $ms | $before → $(term_of "$n") | $counts |"
  grep '^other' "$out" | sort | uniq -c | sed 's/^/    /' >&2 || true
  start_node "$l"; wait_caught_up "$l"
done
