#!/usr/bin/env bash
# with-local-cluster.sh CMD [ARGS...]: starts a fresh local cluster (up.sh), runs CMD with
# KUBECONFIG, kubectl and crictl pointing at it, always removes the cluster (down.sh), and exits
# with CMD's status. On failure the run directory's logs are kept when PROGLOG_LC_KEEP=1.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
(($# > 0)) || { echo "usage: $0 CMD [ARGS...]" >&2; exit 64; }

cleanup() { "$SCRIPT_DIR/down.sh" || true; }
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
