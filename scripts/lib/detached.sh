# Starting long-running components (control plane, local cluster) detached from the caller's
# terminal, and telling whether one still runs. Sourced by scripts/control-plane/up.sh and
# scripts/local-cluster/lib.sh.
# shellcheck shell=bash

# detached_start LOG PID_FILE BINARY ARGS...: runs BINARY in its own session (a Ctrl-C in the
# caller's terminal does not reach it) with its output in LOG and its PID in PID_FILE.
detached_start() {
    local log="$1" pid_file="$2" binary="$3"
    shift 3
    setsid "$binary" "$@" >"$log" 2>&1 </dev/null &
    local pid=$! i
    echo "$pid" >"$pid_file"
    # Until setsid has exec'd BINARY, /proc/PID/exe is bash's or setsid's, and a check by
    # executable (detached_pid) would call a component that is starting dead. Return only once
    # the exec happened, or the process is gone (the caller's checks then report its log).
    for ((i = 0; i < 200; i++)); do
        detached_pid "$pid_file" "$binary" >/dev/null && return 0
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.02
    done
}

# detached_pid PID_FILE BINARY: prints the PID when that process runs BINARY (not a reused PID).
detached_pid() {
    local pid_file="$1" binary="$2" pid exe
    [[ -f "$pid_file" ]] || return 1
    pid="$(cat "$pid_file")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    exe="$(readlink "/proc/$pid/exe" 2>/dev/null)" || return 1
    # A binary replaced by a rebuild while running shows as "PATH (deleted)".
    exe="${exe% (deleted)}"
    [[ "$exe" == "$(readlink -f "$binary")" ]] || return 1
    printf '%s' "$pid"
}
