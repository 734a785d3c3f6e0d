#!/usr/bin/env bash
# Stops the local cluster started by up.sh and removes everything it made: pods (through the CRI,
# so the CNI plugin deletes their veths, addresses and rules), the kubelet, kube-proxy (then its
# iptables rules with `kube-proxy --cleanup`), the scheduler, the provisioner, the control plane,
# containerd and its shims, every mount under the run directory, the pod bridge, the iptables
# rules up.sh added, the ip_forward setting, and the run directory itself (PROGLOG_LC_KEEP=1
# keeps the logs). Ends by checking that no rule, mount, link or process is left, and says so.
set -euo pipefail

# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

[[ "$(id -u)" == 0 ]] || lc_die "must run as root"

# 1. The kubelet first: otherwise it restarts the pods being removed.
lc_stop_component kubelet
# 2. Every pod sandbox through the CRI: containerd calls the CNI plugin's DEL for each.
if lc_running_pid containerd >/dev/null && [[ -S "$LC_SOCKET" ]]; then
    pods="$(lc_crictl pods -q 2>/dev/null || true)"
    if [[ -n "$pods" ]]; then
        lc_log "removing $(wc -l <<<"$pods") pod sandboxes"
        # shellcheck disable=SC2086 # one id per word
        lc_crictl stopp $pods >/dev/null 2>&1 || true
        # shellcheck disable=SC2086
        lc_crictl rmp --force $pods >/dev/null 2>&1 || true
    fi
fi
# 3. kube-proxy, then its rules.
lc_stop_component kube-proxy
if [[ -x "$(lc_binary kube-proxy)" ]]; then
    "$(lc_binary kube-proxy)" --cleanup >/dev/null 2>&1 || true
fi
# What --cleanup does not remove (the kubelet's own chains: KUBE-FIREWALL, KUBE-KUBELET-CANARY,
# KUBE-IPTABLES-HINT), and everything after a crash: every KUBE- chain and every jump to one,
# in both families. Only this cluster's kubelet and kube-proxy create KUBE- chains here.
for tool in iptables ip6tables; do
    command -v "$tool" >/dev/null || continue
    for table in filter nat mangle raw; do
        rules="$("$tool" -t "$table" -S 2>/dev/null)" || continue
        while read -r rule; do
            [[ -n "$rule" ]] || continue
            # shellcheck disable=SC2086 # the rule's words, quoted as iptables -S prints them
            eval "$tool" -t "$table" ${rule/#-A/-D} 2>/dev/null || true
        done < <(grep -E '^-A .*-j KUBE-' <<<"$rules" | grep -vE '^-A KUBE-')
        chains="$(awk '/^-N KUBE-/ {print $2}' <<<"$rules")"
        for chain in $chains; do "$tool" -t "$table" -F "$chain" 2>/dev/null || true; done
        for chain in $chains; do "$tool" -t "$table" -X "$chain" 2>/dev/null || true; done
    done
done
lc_stop_component local-path-provisioner
lc_stop_component kube-scheduler
# 4. The control plane (its own down.sh; keeps its logs when asked).
if [[ -d "$PROGLOG_CP_DIR" ]]; then
    PROGLOG_CP_KEEP="${PROGLOG_LC_KEEP:-0}" "$LC_SCRIPT_DIR/../control-plane/down.sh" 2>/dev/null || true
fi
# 5. After a crash (containerd killed, not stopped) container processes may still run: they are
# in the kubelet's `kubepods` cgroups and are this cluster's pods (no other kubelet runs here).
while read -r procs; do
    while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done <"$procs"
done < <(find /sys/fs/cgroup/*/kubepods -name cgroup.procs 2>/dev/null)
# containerd, then any shim it left (shims outlive containerd by design).
lc_stop_component containerd
for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $LC_SOCKET" || true); do
    kill -KILL "$pid" 2>/dev/null || true
done
# 6. Mounts under the run directory (secrets' tmpfs, overlay rootfs, netns files), deepest first.
if [[ -d "$LC_DIR" ]]; then
    while read -r target; do
        umount -l "$target" 2>/dev/null || true
    done < <(findmnt -rn -o TARGET | grep -F "$LC_DIR" | sort -r)
fi
# The kubelet's cgroups (cgroupfs driver: `kubepods` under each v1 hierarchy), now empty.
for hierarchy in /sys/fs/cgroup/*/; do
    [[ -d "${hierarchy}kubepods" ]] || continue
    find "${hierarchy}kubepods" -depth -type d -exec rmdir {} \; 2>/dev/null || true
done
# 7. Network: the bridge (and any veth left on it), our FORWARD rules, ip_forward.
for veth in $(ip -o link show master "$LC_BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link del "$veth" 2>/dev/null || true
done
ip link del "$LC_BRIDGE" 2>/dev/null || true
while iptables -S FORWARD 2>/dev/null | grep -q -- "--comment $LC_RULE_COMMENT"; do
    rule="$(iptables -S FORWARD | grep -- "--comment $LC_RULE_COMMENT" | head -n 1 | sed 's/^-A /-D /')"
    # shellcheck disable=SC2086 # the rule's words
    eval iptables $rule
done
if [[ -f "$LC_DIR/ip_forward.before" ]]; then
    cat "$LC_DIR/ip_forward.before" >/proc/sys/net/ipv4/ip_forward
fi
# 8. The run directory (only if it is ours).
if [[ -d "$LC_DIR" ]]; then
    if [[ "${PROGLOG_LC_KEEP:-0}" == 1 ]]; then
        lc_log "logs kept in $LC_DIR"
    elif [[ -f "$LC_DIR/$LC_MARKER" || -z "$(ls -A "$LC_DIR")" ]]; then
        rm -rf "$LC_DIR"
    else
        lc_die "refusing to delete $LC_DIR: not a local-cluster run directory (no $LC_MARKER)"
    fi
fi

# 9. Check that nothing is left behind.
left=()
# (Captured first: `iptables-save | grep -q` fails under pipefail when grep stops reading early.)
rules="$(iptables-save 2>/dev/null; ip6tables-save 2>/dev/null)" || true
kube_lines="$(grep -cE 'KUBE-|CNI-' <<<"$rules" || true)"
((kube_lines == 0)) || left+=("iptables: $kube_lines lines with KUBE-/CNI- chains")
ip link show "$LC_BRIDGE" >/dev/null 2>&1 && left+=("link $LC_BRIDGE")
findmnt -rn -o TARGET | grep -qF "$LC_DIR" && left+=("mounts under $LC_DIR")
# Every process the cluster started names the run directory in its arguments (configs, sockets).
leftover="$(pgrep -f -- "$LC_DIR/" | tr '\n' ' ' || true)"
[[ -z "$leftover" ]] || left+=("processes $leftover")
compgen -G "/sys/fs/cgroup/*/kubepods" >/dev/null && left+=("kubepods cgroups")
if ((${#left[@]} > 0)); then
    lc_log "warning: left behind: ${left[*]}"
    exit 1
fi
lc_log "stopped; nothing left behind"
