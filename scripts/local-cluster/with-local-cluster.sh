#!/usr/bin/env bash
# with-local-cluster.sh CMD [ARGS...]: starts a fresh local cluster (up.sh), runs CMD with
# KUBECONFIG, kubectl and crictl pointing at it, always removes the cluster (down.sh), and exits
# with CMD's status. PROGLOG_LC_KEEP=1 keeps the run directory's logs.
# A healthy cluster that is already running (`make up`) is used as it is and left running: the
# machine has room for one node, and removing someone's cluster would be rude.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
(($# > 0)) || { echo "usage: $0 CMD [ARGS...]" >&2; exit 64; }

# shellcheck source=lib.sh
source "$SCRIPT_DIR/lib.sh"
started_here=1
if [[ -f "$LC_DIR/env" ]] && lc_kubectl get --raw /readyz >/dev/null 2>&1; then
    lc_log "a local cluster is already running ($LC_DIR): using it and leaving it running"
    started_here=0
fi
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() { ((started_here == 0)) || "$SCRIPT_DIR/down.sh" || true; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

KUBECONFIG="$("$SCRIPT_DIR/up.sh")"
export KUBECONFIG
# shellcheck source=/dev/null # written by up.sh
source "$(dirname "$KUBECONFIG")/../env"
status=0
"$@" || status=$?
exit "$status"
