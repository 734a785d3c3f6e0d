#!/usr/bin/env bash
# Stops the local control plane started by up.sh from $PROGLOG_CP_DIR (default
# $PROGLOG_CACHE_DIR/run/control-plane): kube-controller-manager, kube-apiserver, then etcd, by
# the pids they recorded (only processes that still run the cached binaries are signalled).
# Then deletes the run directory, unless PROGLOG_CP_KEEP=1 (to read the logs after a failure).
set -euo pipefail

# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

if [[ ! -d "$CP_DIR" ]]; then
    cp_log "nothing to stop: $CP_DIR does not exist"
    exit 0
fi
cp_stop_all
if [[ "${PROGLOG_CP_KEEP:-0}" == 1 ]]; then
    cp_log "stopped; logs kept in $CP_DIR"
else
    cp_wipe_run_dir
    cp_log "stopped and removed $CP_DIR"
fi
