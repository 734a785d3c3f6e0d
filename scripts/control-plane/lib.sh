# Sourced by up.sh, down.sh and with-control-plane.sh: the run directory layout, logging and
# process helpers shared by starting and stopping the local control plane.
# shellcheck shell=bash

CP_SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.sh
source "$CP_SCRIPT_DIR/versions.sh"

# One directory per running control plane: certificates, etcd data, logs, pid files, kubeconfig.
# Several can run side by side (each picks free ports) as long as their directories differ.
CP_DIR="${PROGLOG_CP_DIR:-$PROGLOG_CACHE_DIR/run/control-plane}"
# shellcheck disable=SC2034 # used by up.sh, which sources this file
CP_KUBECONFIG="$CP_DIR/kubeconfig"
# Marks a directory as a run directory, so only those are ever deleted (PROGLOG_CP_DIR could
# point anywhere by mistake).
CP_MARKER=.proglog-control-plane
# Start order; stopped in reverse.
CP_COMPONENTS=(etcd kube-apiserver kube-controller-manager)

cp_log() { printf '[control-plane] %s\n' "$*" >&2; }
cp_die() { cp_log "error: $*"; exit 1; }

# The binary path of a component, from the versioned cache written by build.sh.
cp_binary() {
    case "$1" in
        etcd) printf '%s/etcd' "$(etcd_bin_dir)" ;;
        *) printf '%s/%s' "$(k8s_bin_dir)" "$1" ;;
    esac
}

# Prints the pid of a component if the pid file names a live process running that component's
# binary; a stale pid file (or a pid reused by an unrelated process) prints nothing.
cp_running_pid() {
    local component="$1" pid_file="$CP_DIR/$1.pid" pid exe
    [[ -f "$pid_file" ]] || return 1
    pid="$(cat "$pid_file")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    exe="$(readlink "/proc/$pid/exe" 2>/dev/null)" || return 1
    # A binary replaced by a rebuild while running shows as "PATH (deleted)".
    exe="${exe% (deleted)}"
    [[ "$exe" == "$(readlink -f "$(cp_binary "$component")")" ]] || return 1
    printf '%s' "$pid"
}

# Stops one component: SIGTERM, then SIGKILL if it has not exited after a grace period.
cp_stop_component() {
    local component="$1" pid waited=0
    if pid="$(cp_running_pid "$component")"; then
        kill -TERM "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do
            if ((waited >= 150)); then
                cp_log "$component (pid $pid) ignored SIGTERM for 15s; sending SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.1
            waited=$((waited + 1))
        done
    fi
    rm -f "$CP_DIR/$component.pid"
}

cp_stop_all() {
    local i
    for ((i = ${#CP_COMPONENTS[@]} - 1; i >= 0; i--)); do
        cp_stop_component "${CP_COMPONENTS[$i]}"
    done
}

# Deletes the run directory if it is one of ours (has the marker) or is empty; refuses otherwise.
cp_wipe_run_dir() {
    [[ -e "$CP_DIR" ]] || return 0
    if [[ -f "$CP_DIR/$CP_MARKER" || -z "$(ls -A "$CP_DIR")" ]]; then
        rm -rf "$CP_DIR"
    else
        cp_die "refusing to delete $CP_DIR: it is not empty and not a control-plane run directory (no $CP_MARKER)"
    fi
}
