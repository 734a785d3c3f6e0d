# Sourced by scripts/local-cluster/{up,down}.sh: the layout of a local single-node Kubernetes
# cluster (the control plane of scripts/control-plane/ plus containerd, kubelet, kube-proxy,
# kube-scheduler and a host-path volume provisioner, all host processes) and its process helpers.
# shellcheck shell=bash

# shellcheck disable=SC2034 # the variables below are used by the scripts that source this file
LC_SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../control-plane/versions.sh
source "$LC_SCRIPT_DIR/../control-plane/versions.sh"

# One run directory holds everything the cluster writes (containerd's content and state, the
# kubelet's root, pod logs, volumes, the control plane's own run directory), so down.sh can
# remove it whole. Images are re-imported from the cached archives at every start (seconds).
LC_DIR="${PROGLOG_LC_DIR:-$PROGLOG_CACHE_DIR/run/local-cluster}"
LC_MARKER=.proglog-local-cluster
LC_NODE_NAME="${PROGLOG_LC_NODE_NAME:-proglog-local}"
# The pod network: one Linux bridge whose address is also the node's address. The API server and
# the kubelet bind it, so pods reach them without touching the host's loopback or its uplink.
LC_BRIDGE="${PROGLOG_LC_BRIDGE:-proglog0}"
LC_POD_CIDR="${PROGLOG_LC_POD_CIDR:-10.244.0.0/24}"
LC_NODE_IP="${PROGLOG_LC_NODE_IP:-10.244.0.1}"
LC_SERVICE_CIDR="${PROGLOG_CP_SERVICE_CIDR:-10.96.0.0/16}"
LC_DNS_IP="${PROGLOG_LC_DNS_IP:-10.96.0.10}"
LC_SOCKET="$LC_DIR/containerd.sock"
LC_IMAGES_DIR="$PROGLOG_CACHE_DIR/local-cluster/images"
LC_PAUSE_IMAGE="docker.io/library/proglog-pause:3.10"
# Tags iptables rules this script adds itself (not kube-proxy's or the CNI plugin's), so
# down.sh removes exactly those.
LC_RULE_COMMENT="proglog-local-cluster"
# The control plane lives inside the cluster's run directory.
export PROGLOG_CP_DIR="$LC_DIR/control-plane"
export PROGLOG_CP_NODE_IP="$LC_NODE_IP"
export PROGLOG_CP_SERVICE_CIDR="$LC_SERVICE_CIDR"
# shellcheck source=../control-plane/lib.sh
source "$LC_SCRIPT_DIR/../control-plane/lib.sh"

# Node components in start order; stopped in reverse (the kubelet before containerd, so it does
# not restart the pods being removed).
LC_COMPONENTS=(containerd kube-scheduler kubelet kube-proxy local-path-provisioner)

lc_log() { printf '[local-cluster] %s\n' "$*" >&2; }
lc_die() { lc_log "error: $*"; exit 1; }

crictl_bin() { "$LC_SCRIPT_DIR/../tools/crictl.sh"; }
lc_crictl() { "$(crictl_bin)" --config /dev/null --runtime-endpoint "unix://$LC_SOCKET" --image-endpoint "unix://$LC_SOCKET" "$@"; }
lc_ctr() { ctr --address "$LC_SOCKET" --namespace k8s.io "$@"; }
lc_kubectl() { "$(k8s_bin_dir)/kubectl" --kubeconfig "$CP_KUBECONFIG" "$@"; }

# The binary each component runs (its pid file is only trusted while that binary runs).
lc_binary() {
    case "$1" in
        containerd) command -v containerd ;;
        local-path-provisioner) printf '%s/debug/local-path-provisioner' "${CARGO_TARGET_DIR:-$PROGLOG_CACHE_DIR/target}" ;;
        *) printf '%s/%s' "$(k8s_bin_dir)" "$1" ;;
    esac
}

lc_running_pid() {
    detached_pid "$LC_DIR/$1.pid" "$(lc_binary "$1")"
}

# lc_start COMPONENT ARGS...: in its own session, output in COMPONENT.log.
lc_start() {
    local component="$1"
    shift
    detached_start "$LC_DIR/$component.log" "$LC_DIR/$component.pid" "$(lc_binary "$component")" "$@"
}

lc_stop_component() {
    local component="$1" pid waited=0
    if pid="$(lc_running_pid "$component")"; then
        kill -TERM "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do
            if ((waited >= 150)); then
                lc_log "$component (pid $pid) ignored SIGTERM for 15s; sending SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.1
            waited=$((waited + 1))
        done
    fi
    rm -f "$LC_DIR/$component.pid"
}
