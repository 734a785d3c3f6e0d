#!/usr/bin/env bash
# with-control-plane.sh CMD [ARGS...]: starts a fresh local control plane (up.sh), runs CMD with
# KUBECONFIG pointing at it, always stops it (down.sh), and exits with CMD's status.
#
# Each invocation gets its own run directory (unless PROGLOG_CP_DIR is set), so several test
# runs on the same machine do not share or stop each other's control plane.
# PROGLOG_CP_KEEP=1 keeps the run directory (component logs) after the run.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.sh
source "$SCRIPT_DIR/versions.sh"

if (($# == 0)); then
    echo "usage: $0 CMD [ARGS...]" >&2
    exit 64
fi

if [[ -z "${PROGLOG_CP_DIR:-}" ]]; then
    mkdir -p "$PROGLOG_CACHE_DIR/run"
    PROGLOG_CP_DIR="$(mktemp -d "$PROGLOG_CACHE_DIR/run/cp.XXXXXX")"
fi
export PROGLOG_CP_DIR

# Stop the control plane however this script ends (CMD failure, Ctrl-C, TERM).
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() { "$SCRIPT_DIR/down.sh" || true; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

KUBECONFIG="$("$SCRIPT_DIR/up.sh")"
export KUBECONFIG
# Put the matching kubectl first on PATH for scripts run under this wrapper.
PATH="$(k8s_bin_dir):$PATH"
export PATH

status=0
"$@" || status=$?
exit "$status"
