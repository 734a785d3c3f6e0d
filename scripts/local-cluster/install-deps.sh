#!/usr/bin/env bash
# Installs the Debian packages the local cluster runs on, if any is missing: containerd (1.6),
# runc, the CNI plugins, iptables and conntrack (kube-proxy), socat (port-forward fallback); and
# libfaketime for the fault suite's clock faults.
# Nothing is started here and no service is enabled: up.sh runs containerd with its own config.
set -euo pipefail

need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v conntrack >/dev/null || need+=(conntrack)
command -v socat >/dev/null || need+=(socat)
command -v gcc >/dev/null || need+=(gcc libc6-dev)
command -v python3 >/dev/null || need+=(python3)
# The fault suite's clock faults (faults/src/clock.rs).
[[ -f /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1 ]] || need+=(libfaketime)
if ((${#need[@]} == 0)); then
    exit 0
fi
echo "[local-cluster/install-deps] apt-get install ${need[*]}" >&2
[[ "$(id -u)" == 0 ]] || { echo "run as root to install: ${need[*]}" >&2; exit 1; }
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian's package may start its own containerd where an init system exists; ours uses its own
# socket and directories, so the two never collide.
