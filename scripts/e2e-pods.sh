#!/usr/bin/env bash
# e2e-pods.sh: the whole e2e suite against a cluster whose pods run ($KUBECONFIG: the local
# cluster under `make e2e-pods`, kind in GitHub Actions): installs the operator with the Helm
# chart, then runs every scenario with the operator in the cluster and the node image the
# cluster has (`proglog-node:dev`). Each scenario dumps pods, events and status on failure.
#
# Two lanes run at once, each one file after another: the test files named in
# PROGLOG_E2E_PARALLEL (default: pods_lifecycle, whose certificate scenario mostly waits for a
# certificate to expire, and pods_rotation, whose phases mostly wait for the kubelet to sync
# Secrets) and every other file of e2e/tests. Every scenario has its own namespace; the scenarios
# that cordon the nodes (failover, replacement) are all in the sequential lane, and the
# parallel lane creates no pod once its clusters are up, so a cordon only delays it. Set
# PROGLOG_E2E_PARALLEL="" to run everything one file after another.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${KUBECONFIG:?KUBECONFIG must name the cluster}"
CARGO="${CARGO:-cargo}"
PARALLEL="${PROGLOG_E2E_PARALLEL-pods_lifecycle pods_rotation}"

"$ROOT/scripts/install-operator.sh"
export PROGLOG_E2E_PODS=1 PROGLOG_E2E_OPERATOR=in-cluster
export PROGLOG_E2E_NODE_IMAGE="${PROGLOG_E2E_NODE_IMAGE:-proglog-node:dev}"
export KUBECTL="${KUBECTL:-kubectl}"
cd "$ROOT"

parallel=()
sequential=()
for file in e2e/tests/*.rs; do
    name="$(basename "$file" .rs)"
    if [[ " $PARALLEL " == *" $name "* ]]; then
        parallel+=(--test "$name")
    else
        sequential+=(--test "$name")
    fi
done
((${#sequential[@]} > 0)) || { echo "e2e-pods: no test file left for the sequential lane" >&2; exit 1; }

# Build once, so the lanes do not compile (or wait for each other's build lock) while timed.
"$CARGO" test -p proglog-e2e --tests --no-run

parallel_pid=""
parallel_log=""
if ((${#parallel[@]} > 0)); then
    parallel_log="$(mktemp)"
    echo "[e2e-pods] parallel lane: ${parallel[*]} (output at the end)" >&2
    "$CARGO" test -p proglog-e2e --no-fail-fast "${parallel[@]}" -- --ignored --test-threads=1 \
        >"$parallel_log" 2>&1 &
    parallel_pid=$!
fi
echo "[e2e-pods] sequential lane: ${sequential[*]}" >&2
sequential_status=0
"$CARGO" test -p proglog-e2e --no-fail-fast "${sequential[@]}" -- --ignored --test-threads=1 ||
    sequential_status=$?

parallel_status=0
if [[ -n "$parallel_pid" ]]; then
    wait "$parallel_pid" || parallel_status=$?
    echo "[e2e-pods] parallel lane (${parallel[*]}) output:" >&2
    cat "$parallel_log" >&2
    rm -f "$parallel_log"
fi
echo "[e2e-pods] sequential lane exit $sequential_status, parallel lane exit $parallel_status" >&2
((sequential_status == 0 && parallel_status == 0))
