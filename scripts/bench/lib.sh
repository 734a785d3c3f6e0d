# shellcheck shell=bash
# Shared by the Raft benchmark drivers (raft.sh, shutdown.sh): the CLI's connection flags, a
# retry helper, and starting a node process on loopback with the dev certificates.
# Sourced; the caller sets NODE, CERTS and WORK and declares the array `pids`.

# conn ADDR: the CLI flags to reach ADDR as `root` with the dev certificates.
conn() { echo --addr "$1" --ca "$CERTS/ca.pem" --cert "$CERTS/root.pem" --key "$CERTS/root-key.pem"; }

# retry CMD...: runs CMD until it succeeds (up to 50 times, 0.2 s apart), then once more loudly.
retry() { for _ in $(seq 1 50); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done; "$@"; }

# machine_share: one of three servers' share of this machine's CPUs (nproc / 3, at least 1).
machine_share() { local n=$(($(nproc) / 3)); echo $((n > 0 ? n : 1)); }

# server_threads_init: sets SERVER_THREADS, the threads each server process runs its code on
# (ProgLog's --worker-threads), and NODE_THREAD_ARGS.
# Unset, it follows NODE_CPUS rounded up, as a pod with that CPU limit gets (set after start, a
# cgroup cap would leave a runtime sized for the whole machine), else DEFAULT_SERVER_THREADS
# when the caller sets one, else "auto": each server's own default, one per CPU.
server_threads_init() {
  if [[ -z ${SERVER_THREADS:-} ]]; then
    if [[ -n ${NODE_CPUS:-} ]]; then SERVER_THREADS=$(awk -v c="$NODE_CPUS" 'BEGIN { n = int(c); if (n < c) n++; print (n < 1 ? 1 : n) }')
    else SERVER_THREADS=${DEFAULT_SERVER_THREADS:-auto}; fi
  fi
  [[ $SERVER_THREADS == auto || $SERVER_THREADS =~ ^[1-9][0-9]*$ ]] ||
    { echo "SERVER_THREADS must be a positive integer or 'auto', got '$SERVER_THREADS'" >&2; exit 1; }
  NODE_THREAD_ARGS=()
  [[ $SERVER_THREADS == auto ]] || NODE_THREAD_ARGS=(--worker-threads "$SERVER_THREADS")
}

# launch_node INDEX PORT RAFT(true|false): starts node INDEX in the background on PORT (metrics
# on PORT+1000), data in $WORK/node-INDEX, log appended to $WORK/node-INDEX.log; sets
# pids[INDEX]. Returns at once; see wait_node_healthy. Worker threads: NODE_THREAD_ARGS (see
# server_threads_init).
launch_node() {
  local i=$1 port=$2 raft=$3
  mkdir -p "$WORK/node-$i"
  "$NODE" --data-dir "$WORK/node-$i" --bind-addr "127.0.0.1:$port" --advertise-addr "127.0.0.1:$port" \
    --metrics-addr "127.0.0.1:$((port + 1000))" --ordinal "$i" \
    --tls-cert "$CERTS/node.pem" --tls-key "$CERTS/node-key.pem" --tls-ca "$CERTS/ca.pem" \
    --acl-file "$CERTS/acl.csv" --raft "$raft" ${NODE_THREAD_ARGS[@]+"${NODE_THREAD_ARGS[@]}"} \
    >>"$WORK/node-$i.log" 2>&1 &
  # shellcheck disable=SC2034 # the caller's array
  pids[i]=$!
}

# wait_node_healthy INDEX PORT: waits (10 s at most) for the node's /healthz; exits on failure.
wait_node_healthy() {
  local i=$1 port=$2
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$((port + 1000))/healthz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "node $i did not start; see $WORK/node-$i.log" >&2
  exit 1
}

# cpu_caps_init: with NODE_CPUS set (e.g. 0.5), finds the writable cgroup cpu controller (v1 or
# v2) into CPU_CGROUP_ROOT, or exits; without it, CPU_CGROUP_ROOT stays empty and nothing is
# capped.
cpu_caps_init() {
  CPU_CGROUP_ROOT=""
  [[ -n ${NODE_CPUS:-} ]] || return 0
  if [[ -w /sys/fs/cgroup/cpu/cgroup.procs ]]; then CPU_CGROUP_ROOT=/sys/fs/cgroup/cpu # v1
  elif grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then CPU_CGROUP_ROOT=/sys/fs/cgroup # v2
  else echo "NODE_CPUS needs a writable cgroup cpu controller (run as root)" >&2; exit 1; fi
}

# cap_cpu_group GROUP PID: moves PID into cgroup GROUP capped at NODE_CPUS CPUs (no-op without
# NODE_CPUS). A 10 ms period keeps throttling pauses short next to Raft's 100 ms heartbeats.
cap_cpu_group() {
  [[ -n $CPU_CGROUP_ROOT ]] || return 0
  local dir=$CPU_CGROUP_ROOT/$1 quota
  quota=$(awk -v c="$NODE_CPUS" 'BEGIN { printf "%d", c * 10000 }')
  mkdir -p "$dir"
  if [[ -e $dir/cpu.max ]]; then echo "$quota 10000" >"$dir/cpu.max"
  else echo 10000 >"$dir/cpu.cfs_period_us"; echo "$quota" >"$dir/cpu.cfs_quota_us"; fi
  echo "$2" >"$dir/cgroup.procs"
}
