#!/usr/bin/env bash
# e2e-pods.sh: the whole e2e suite against a cluster whose pods run ($KUBECONFIG: the local
# cluster under `make e2e-pods`, kind in GitHub Actions): installs the operator with the Helm
# chart, then runs every scenario with the operator in the cluster and the node image the
# cluster has (`proglog-node:dev`). Each scenario dumps pods, events and status on failure.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
: "${KUBECONFIG:?KUBECONFIG must name the cluster}"
CARGO="${CARGO:-cargo}"

"$ROOT/scripts/install-operator.sh"
export PROGLOG_E2E_PODS=1 PROGLOG_E2E_OPERATOR=in-cluster
export PROGLOG_E2E_NODE_IMAGE="${PROGLOG_E2E_NODE_IMAGE:-proglog-node:dev}"
export KUBECTL="${KUBECTL:-kubectl}"
cd "$ROOT"
"$CARGO" test -p proglog-e2e --test '*' -- --ignored --test-threads=1
