#!/usr/bin/env bash
# free_port (scripts/control-plane/lib.sh) must hand out ports that no outgoing connection can
# take before the component binds them: ports below the kernel's ephemeral range. A CI run failed
# with "etcd: listen tcp 127.0.0.1:35586: bind: address already in use" while another test's
# connections drew local ports from that range (32768-60999 here) between the pick and the bind.
set -euo pipefail
cp_die() { echo "FAIL: $*" >&2; exit 1; }
# shellcheck source=../control-plane/lib.sh
source "$(dirname "$0")/../control-plane/lib.sh"

read -r ephemeral_low ephemeral_high </proc/sys/net/ipv4/ip_local_port_range
picks=300
for i in $(seq 1 "$picks"); do
    picked=""
    free_port picked
    if ((picked >= ephemeral_low && picked <= ephemeral_high)); then
        echo "FAIL pick $i: port $picked is in the ephemeral range $ephemeral_low-$ephemeral_high" >&2
        exit 1
    fi
    if ((picked < 1024)); then
        echo "FAIL pick $i: port $picked is privileged" >&2
        exit 1
    fi
done
echo "free-port: $picks picks, all below the ephemeral range $ephemeral_low-$ephemeral_high"
