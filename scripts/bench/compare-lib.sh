# shellcheck shell=bash
# Sourced by compare.sh: what every system's runs share — the results file, per-run CPU and disk
# accounting of a cluster's server processes from /proc, stopping processes, and the machine's
# limits measured in the same run (fsync rate, fsync'd bandwidth, loopback TLS bandwidth).
# The caller sets WORK, RESULTS and SCRIPT_DIR.

# record SYSTEM ROUND LOAD METRIC VALUE: one measurement, a tab-separated line of $RESULTS; an
# empty VALUE (a figure the tool did not report, e.g. etcd's p99 of fewer than 100 requests) is
# left out.
record() { [[ -n $5 ]] || return 0; printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"; }

# proc_totals PID...: "<CPU ticks> <bytes written> <wake-ups> <I/O system calls>" summed over
# the processes: utime + stime (fields 14 and 15 of /proc/PID/stat, all threads); write_bytes of
# /proc/PID/io (bytes the process caused to be sent to the storage layer: a whole page each time
# one turns dirty, so a write followed by an fsync counts once, and a 1 KiB write into a page
# fsync'd before counts 4 KiB); voluntary context switches of every thread (a thread that blocked
# — on a socket, a futex, an fsync — and was woken again: the task hops and wake-ups on the
# critical path, from /proc/PID/task/*/status, so threads that exited during the run are not
# counted); and syscr + syscw of /proc/PID/io (read- and write-family system calls, sockets
# included).
proc_totals() {
  local pid ticks=0 bytes=0 wakeups=0 syscalls=0 t b w c
  for pid in "$@"; do
    t=$(awk '{ print $14 + $15 }' "/proc/$pid/stat") || { echo "process $pid is gone" >&2; return 1; }
    b=$(awk '$1 == "write_bytes:" { print $2 }' "/proc/$pid/io")
    c=$(awk '$1 == "syscr:" || $1 == "syscw:" { n += $2 } END { print n + 0 }' "/proc/$pid/io")
    w=$(cat "/proc/$pid"/task/*/status 2>/dev/null | awk '$1 == "voluntary_ctxt_switches:" { n += $2 } END { print n + 0 }')
    ticks=$((ticks + t))
    bytes=$((bytes + b))
    wakeups=$((wakeups + w))
    syscalls=$((syscalls + c))
  done
  echo "$ticks $bytes $wakeups $syscalls"
}

# measured SYSTEM ROUND LOAD RECORDS OUT PIDS -- CMD...: runs CMD (the load generator) with its
# output in OUT and records the servers' CPU seconds per 1 000 records and bytes written to disk
# per record over the run. Fails when CMD fails, printing its output.
measured() {
  local system=$1 round=$2 load=$3 records=$4 out=$5 pids_csv=$6 before after t0 b0 w0 c0 t1 b1 w1 c1
  shift 7 # the six arguments and "--"
  local server_pids
  IFS=, read -r -a server_pids <<<"$pids_csv"
  before=$(proc_totals "${server_pids[@]}")
  # In the background, so that Ctrl-C interrupts the wait at once (and cleanup stops it).
  "$@" >"$out" 2>&1 &
  local generator=$!
  servers+=("$generator")
  local status=0
  wait "$generator" || status=$?
  forget_server "$generator"
  if ((status)); then
    echo "$system $load failed (exit status $status): $*" >&2
    sed 's/^/    /' "$out" >&2
    return 1
  fi
  after=$(proc_totals "${server_pids[@]}")
  read -r t0 b0 w0 c0 <<<"$before"
  read -r t1 b1 w1 c1 <<<"$after"
  record "$system" "$round" "$load" cpu_s_per_1000 \
    "$(awk -v t=$((t1 - t0)) -v hz="$(getconf CLK_TCK)" -v n="$records" 'BEGIN { printf "%.4f", t / hz * 1000 / n }')"
  record "$system" "$round" "$load" disk_bytes_per_record \
    "$(awk -v b=$((b1 - b0)) -v n="$records" 'BEGIN { printf "%.0f", b / n }')"
  record "$system" "$round" "$load" wakeups_per_record \
    "$(awk -v w=$((w1 - w0)) -v n="$records" 'BEGIN { printf "%.2f", w / n }')"
  record "$system" "$round" "$load" io_syscalls_per_record \
    "$(awk -v c=$((c1 - c0)) -v n="$records" 'BEGIN { printf "%.2f", c / n }')"
}

# stop_processes PID...: SIGTERM, then SIGKILL whatever is still running 10 s later; waits for all.
stop_processes() {
  (($#)) || return 0
  kill -TERM "$@" 2>/dev/null || true
  local _ pid alive
  for _ in $(seq 1 100); do
    alive=0
    for pid in "$@"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  kill -KILL "$@" 2>/dev/null || true
  for pid in "$@"; do wait "$pid" 2>/dev/null || true; done
}

# wait_until TRIES CMD...: runs CMD every 0.2 s until it succeeds, TRIES times at most.
wait_until() {
  local tries=$1
  shift
  for _ in $(seq 1 "$tries"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  return 1
}

# limits_disk ROUND: fsync rate and fsync'd 1 MiB write bandwidth in the directory the servers'
# data lives in (disk-limits.sh: fio when installed, else dd with oflag=dsync).
limits_disk() {
  local out
  out=$(RUNTIME=$LIMITS_SECONDS SIZE_MB=$LIMITS_DISK_MB "$SCRIPT_DIR/disk-limits.sh" "$WORK") ||
    { echo "disk-limits.sh failed: $out" >&2; return 1; }
  record machine "$1" limits fsync_mb_per_s "$(awk '/^fsync.d sequential write/ { for (i = 1; i <= NF; i++) if ($(i + 1) == "MB/s") print $i }' <<<"$out")"
  record machine "$1" limits fsync_per_s "$(awk '/^fsync rate/ { for (i = 1; i <= NF; i++) if ($(i + 1) == "writes/s") print $i }' <<<"$out")"
  record machine "$1" limits disk_tool "$(awk '/^tool:/ { print $2 }' <<<"$out")"
}

# limits_tls ROUND: bytes/s through one TLS 1.3 connection on loopback, one way, with the
# benchmark's certificates and OpenSSL's preferred cipher suite (Python's ssl module: the
# encryption runs in OpenSSL, 1 MiB per call) — what encryption alone lets one connection carry.
limits_tls() {
  local out
  out=$(python3 - "$CERTS" "$LIMITS_TLS_MB" <<'EOF'
import socket, ssl, sys, threading, time

certs, mib = sys.argv[1], int(sys.argv[2])
server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
server_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
server_ctx.load_cert_chain(f"{certs}/node.pem", f"{certs}/node-key.pem")
client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
client_ctx.minimum_version = ssl.TLSVersion.TLSv1_3
client_ctx.load_verify_locations(f"{certs}/ca.pem")
client_ctx.check_hostname = False  # the certificate chain is still verified
listener = socket.create_server(("127.0.0.1", 0))
received = 0

def serve():
    global received
    conn, _ = listener.accept()
    with server_ctx.wrap_socket(conn, server_side=True) as tls:
        buf = bytearray(1 << 20)
        while received < mib << 20:
            n = tls.recv_into(buf)
            if not n:
                break
            received += n

server = threading.Thread(target=serve)
server.start()
client = client_ctx.wrap_socket(socket.create_connection(listener.getsockname()))
chunk = bytes(1 << 20)
started = time.perf_counter()
for _ in range(mib):
    client.sendall(chunk)
server.join()
elapsed = time.perf_counter() - started
if received != mib << 20:
    sys.exit(f"received {received} of {mib << 20} bytes")
print(round(received / elapsed / 1e6), client.cipher()[0])
client.close()
EOF
  ) || { echo "loopback TLS probe failed: $out" >&2; return 1; }
  record machine "$1" limits tls_mb_per_s "${out%% *}"
  record machine "$1" limits tls_cipher "${out#* }"
}

# forget_server PID: drops PID from the servers cleanup stops.
forget_server() {
  local kept=() pid
  for pid in "${servers[@]}"; do [[ $pid == "$1" ]] || kept+=("$pid"); done
  servers=("${kept[@]}")
}

# NODE_CPUS (e.g. 0.5): every server process of every system runs in its own cgroup capped at
# that many CPUs (CFS quota, 10 ms period, as raft.sh), i.e. equal, separate-machine-like CPU
# budgets; load generators are not capped. Without it all processes share the machine's CPUs.
cpu_caps_init

# cap_cpu INDEX PID: moves server PID into cgroup proglog-compare-INDEX (when NODE_CPUS is set).
cap_cpu() { cap_cpu_group "proglog-compare-$1" "$2"; }

# remove_cpu_caps: removes the (empty, once the servers are gone) cgroups.
remove_cpu_caps() {
  [[ -n $CPU_CGROUP_ROOT ]] || return 0
  rmdir "$CPU_CGROUP_ROOT"/proglog-compare-? 2>/dev/null || true
}
