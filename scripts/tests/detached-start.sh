#!/usr/bin/env bash
# A component started by detached_start must be recognised as running the moment the call
# returns: startup scripts check "did it exit?" right after starting it (a cold CI run once
# failed with "kube-controller-manager exited while waiting for /healthz" and an empty log:
# the check ran before setsid had exec'd the binary).
set -euo pipefail
# shellcheck source=../lib/detached.sh
source "$(dirname "$0")/../lib/detached.sh"

dir="$(mktemp -d)"
# The window is a few milliseconds wide; busy CPUs (as in CI, where builds run beside it) widen it.
hogs=()
for _ in 1 2 3; do
    (while :; do :; done) &
    hogs+=($!)
done
trap 'kill "${hogs[@]}" 2>/dev/null; rm -rf "$dir"' EXIT
binary="$(readlink -f "$(command -v sleep)")"
rounds=200
for round in $(seq 1 "$rounds"); do
    detached_start "$dir/log" "$dir/pid" "$binary" 30
    if ! pid="$(detached_pid "$dir/pid" "$binary")"; then
        echo "FAIL round $round: pid $(cat "$dir/pid") runs $(readlink "/proc/$(cat "$dir/pid")/exe" 2>/dev/null || echo nothing), not $binary" >&2
        kill "$(cat "$dir/pid")" 2>/dev/null || true
        exit 1
    fi
    kill "$pid"
done
echo "detached-start: $rounds starts under CPU load, each seen running at once"
