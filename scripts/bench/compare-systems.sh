# shellcheck shell=bash
# Sourced by compare.sh: how each system's 3-node cluster is started on loopback, loaded and
# stopped. For each SYSTEM in proglog, etcd, nats (etcd-tls and nats-tls are etcd and nats with
# mutual TLS on every connection, clients and peers, with the certificates ProgLog uses; compare.sh
# sets SYSTEM to the name measured and TLS=1 for those):
#   SYSTEM_start           starts the cluster (fresh data directories under $WORK) and waits
#                          until it accepts writes; sets SYSTEM_PIDS (comma-separated)
#   SYSTEM_load ROUND LOAD one load (c<N>: N concurrent clients each waiting for every
#                          acknowledgement; stream: one pipelined/async publisher; consume: one
#                          reader of records written earlier), recording its figures
#   SYSTEM_stop            stops the cluster and removes its data
# Ports: BASE_PORT+11.. ProgLog (metrics +1000), +21.. etcd clients (gRPC), +31.. etcd peers, +71..
# etcd metrics and /health, +81.. etcd client HTTP, +41.. NATS clients, +51.. NATS routes, +61..
# NATS monitoring (Kafka: compare-kafka.sh).
# shellcheck disable=SC2046 # $(conn ...) is split into flags on purpose
# shellcheck disable=SC2034,SC2153 # the *_SETTINGS are printed and RECORDS etc. set by compare.sh

# records_for LOAD: how many records a run of LOAD writes or reads.
records_for() {
  case $1 in
    c1) echo $((RECORDS / 10)) ;;
    stream) echo "$STREAM_RECORDS" ;;
    consume) echo "$CONSUME_RECORDS" ;;
    *) echo "$RECORDS" ;;
  esac
}

# ---------------------------------------------------------------------------------------------
# ProgLog: proglog-node with --raft true, mTLS between clients and nodes and between nodes,
# started as scripts/bench/raft.sh does (lib.sh's launch_node). Every acknowledged produce has
# been fsync'd by a majority (no opt-out flag exists); nodes run with their defaults.
PROGLOG_SETTINGS="--raft true, mutual TLS for clients and peers, defaults otherwise; a produce is acknowledged once fsync'd on a majority (always; there is no flag to relax it)"

proglog_start() {
  local i port=$((BASE_PORT + 11))
  pids=()
  for i in 0 1 2; do
    launch_node "$i" $((port + i)) true
    servers+=("${pids[$i]}")
    cap_cpu "$i" "${pids[$i]}"
  done
  for i in 0 1 2; do wait_node_healthy "$i" $((port + i)); done
  "$PROGLOG" $(conn "127.0.0.1:$port") cluster init >/dev/null
  for i in 1 2; do retry "$PROGLOG" $(conn "127.0.0.1:$port") cluster add "127.0.0.1:$((port + i))" >/dev/null; done
  retry "$PROGLOG" $(conn "127.0.0.1:$port") produce warm-up
  PROGLOG_PIDS=$(IFS=,; echo "${pids[*]}")
  # The clients talk to the leader (the node that initialised the cluster, unless an election
  # moved it): `servers` prints one line per server, "ID ADDRESS ROLE ...".
  PROGLOG_LEADER=$("$PROGLOG" $(conn "127.0.0.1:$port") servers | awk '$0 ~ /leader/ { print $2; exit }')
  [[ $PROGLOG_LEADER == 127.0.0.1:* ]] || { echo "no ProgLog leader in 'proglog servers'" >&2; return 1; }
}

proglog_stop() {
  local pid
  stop_processes "${pids[@]}"
  for pid in "${pids[@]}"; do forget_server "$pid"; done
  pids=()
  rm -rf "$WORK"/node-?
}

proglog_load() {
  local round=$1 load=$2 records out=$WORK/out-$SYSTEM-$1-$2 args
  records=$(records_for "$load")
  case $load in
    c[0-9]*) args=(produce --bench "$records" --size "$SIZE" --concurrency "${load#c}" --mode unary) ;;
    stream) args=(produce --bench "$records" --size "$SIZE" --concurrency 1 --mode stream) ;;
    consume) args=(consume --bench "$records" --from 0 --concurrency 1 --mode stream) ;;
  esac
  measured "$SYSTEM" "$round" "$load" "$records" "$out" "$PROGLOG_PIDS" -- \
    "$PROGLOG" $(conn "$PROGLOG_LEADER") "${args[@]}" -o json || return 1
  # One JSON object: records_per_s, latency_p50_ms, latency_p99_ms.
  jq -r '"records_per_s \(.records_per_s)", "p50_ms \(.latency_p50_ms // "")", "p99_ms \(.latency_p99_ms // "")"' "$out" |
    while read -r metric value; do record "$SYSTEM" "$round" "$load" "$metric" "$value"; done
}

# ---------------------------------------------------------------------------------------------
# etcd: etcd writes each proposal to its WAL and fsyncs it before the entry counts as persisted;
# the only flag to relax that, --unsafe-no-fsync, is not set. The other flags are etcd's defaults
# written out, plus its production advice to serve HTTP apart from gRPC. Metrics and /health are
# on a plain-HTTP port of their own in both variants.
ETCD_SETTINGS="--snapshot-count=10000 --heartbeat-interval=100 --election-timeout=1000 --quota-backend-bytes=8589934592 --auto-compaction-retention=0 --listen-client-http-urls (HTTP apart from gRPC); no --unsafe-no-fsync (WAL fsync before acknowledging)"
ETCD_TLS_SETTINGS="as etcd, plus --client-cert-auth --peer-client-cert-auth with --cert-file/--key-file/--trusted-ca-file and the --peer-* equivalents (https:// client and peer URLs)"

etcd_start() {
  local i cluster="" client peer scheme=http tls=()
  if [[ -n ${TLS:-} ]]; then
    scheme=https
    tls=(--cert-file "$CERTS/node.pem" --key-file "$CERTS/node-key.pem" --trusted-ca-file "$CERTS/ca.pem"
      --client-cert-auth --peer-cert-file "$CERTS/node.pem" --peer-key-file "$CERTS/node-key.pem"
      --peer-trusted-ca-file "$CERTS/ca.pem" --peer-client-cert-auth)
    ETCD_CLIENT_TLS=(--cacert "$CERTS/ca.pem" --cert "$CERTS/root.pem" --key "$CERTS/root-key.pem")
  else
    ETCD_CLIENT_TLS=()
  fi
  ETCD_PIDS_ARRAY=()
  for i in 0 1 2; do cluster+="${cluster:+,}e$i=$scheme://127.0.0.1:$((BASE_PORT + 31 + i))"; done
  for i in 0 1 2; do
    client="$scheme://127.0.0.1:$((BASE_PORT + 21 + i))" peer="$scheme://127.0.0.1:$((BASE_PORT + 31 + i))"
    mkdir -p "$WORK/etcd-$i"
    env ${GO_SERVER_ENV[@]+"${GO_SERVER_ENV[@]}"} "$ETCD" --name "e$i" --data-dir "$WORK/etcd-$i/data" \
      --listen-client-urls "$client" --advertise-client-urls "$client" \
      --listen-client-http-urls "$scheme://127.0.0.1:$((BASE_PORT + 81 + i))" \
      --listen-metrics-urls "http://127.0.0.1:$((BASE_PORT + 71 + i))" \
      --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
      --initial-cluster "$cluster" --initial-cluster-state new --initial-cluster-token proglog-bench \
      --snapshot-count 10000 --heartbeat-interval 100 --election-timeout 1000 \
      --quota-backend-bytes 8589934592 --auto-compaction-retention 0 "${tls[@]}" \
      --log-level warn >>"$WORK/etcd-$i.log" 2>&1 &
    ETCD_PIDS_ARRAY+=("$!")
    servers+=("$!")
    cap_cpu "$i" "$!"
  done
  for i in 0 1 2; do
    wait_until 150 curl -fsS "http://127.0.0.1:$((BASE_PORT + 71 + i))/health" ||
      { echo "etcd $i did not become healthy; see $WORK/etcd-$i.log" >&2; return 1; }
  done
  ETCD_PIDS=$(IFS=,; echo "${ETCD_PIDS_ARRAY[*]}")
  # The clients talk to the leader, as ProgLog's do (a follower would forward every proposal).
  ETCD_LEADER=""
  for _ in $(seq 1 50); do
    for i in 0 1 2; do
      curl -fsS "http://127.0.0.1:$((BASE_PORT + 71 + i))/metrics" 2>/dev/null | grep '^etcd_server_is_leader 1' >/dev/null &&
        ETCD_LEADER="$scheme://127.0.0.1:$((BASE_PORT + 21 + i))"
    done
    [[ -n $ETCD_LEADER ]] && return 0
    sleep 0.2
  done
  echo "etcd elected no leader" >&2
  return 1
}

etcd_stop() {
  local pid
  stop_processes "${ETCD_PIDS_ARRAY[@]}"
  for pid in "${ETCD_PIDS_ARRAY[@]}"; do forget_server "$pid"; done
  ETCD_PIDS_ARRAY=()
  rm -rf "$WORK"/etcd-?
}

etcd_load() {
  local round=$1 load=$2 records out=$WORK/out-$SYSTEM-$1-$2 clients
  case $load in
    stream | consume) return 0 ;; # the benchmark tool has no pipelined put and etcd is no log to consume
  esac
  records=$(records_for "$load")
  clients=${load#c}
  # One connection per client, like ProgLog's and nats bench's clients. Every put is a new key.
  measured "$SYSTEM" "$round" "$load" "$records" "$out" "$ETCD_PIDS" -- \
    "$ETCD_BENCHMARK" --endpoints "$ETCD_LEADER" "${ETCD_CLIENT_TLS[@]}" --conns "$clients" --clients "$clients" \
    put --key-size 16 --val-size "$SIZE" --total "$records" --sequential-keys --key-space-size "$records" --precise || return 1
  # "Requests/sec:	N" and "  50% in X secs." lines of the tool's summary.
  record "$SYSTEM" "$round" "$load" records_per_s "$(awk '/Requests\/sec:/ { print $2 }' "$out")"
  record "$SYSTEM" "$round" "$load" p50_ms "$(awk '$1 == "50%" && $2 == "in" { print $3 * 1000 }' "$out")"
  record "$SYSTEM" "$round" "$load" p99_ms "$(awk '$1 == "99%" && $2 == "in" { print $3 * 1000 }' "$out")"
}

# ---------------------------------------------------------------------------------------------
# NATS JetStream: a 3-server cluster, stream "bench" with file storage and 3 replicas; every
# server fsyncs each write before acknowledging (jetstream { sync_interval: always }; NATS'
# default instead syncs every 2 minutes and relies on replication).
NATS_SETTINGS="server: jetstream { sync_interval: always }; stream: nats stream add --storage file --replicas 3 --retention limits --discard old --defaults"
NATS_TLS_SETTINGS="as NATS, plus tls { verify: true } for clients and in cluster { } for routes (client certificates required everywhere)"

nats_start() {
  local i routes="" conf tls_block="" scheme=nats
  if [[ -n ${TLS:-} ]]; then
    scheme=tls
    tls_block="tls { cert_file: \"$CERTS/node.pem\", key_file: \"$CERTS/node-key.pem\", ca_file: \"$CERTS/ca.pem\", verify: true }"
    NATS_CLIENT_TLS=(--tlscert "$CERTS/root.pem" --tlskey "$CERTS/root-key.pem" --tlsca "$CERTS/ca.pem")
  else
    NATS_CLIENT_TLS=()
  fi
  NATS_PIDS_ARRAY=()
  for i in 0 1 2; do routes+="${routes:+, }nats-route://127.0.0.1:$((BASE_PORT + 51 + i))"; done
  for i in 0 1 2; do
    mkdir -p "$WORK/nats-$i"
    conf=$WORK/nats-$i/server.conf
    cat >"$conf" <<EOF
server_name: n$i
listen: 127.0.0.1:$((BASE_PORT + 41 + i))
http: 127.0.0.1:$((BASE_PORT + 61 + i))
$tls_block
jetstream {
  store_dir: "$WORK/nats-$i/store"
  sync_interval: always
  max_file_store: 64GB
  max_memory_store: 1GB
}
cluster {
  name: proglog-bench
  listen: 127.0.0.1:$((BASE_PORT + 51 + i))
  routes: [$routes]
  $tls_block
}
EOF
    env ${GO_SERVER_ENV[@]+"${GO_SERVER_ENV[@]}"} "$NATS_SERVER" -c "$conf" >>"$WORK/nats-$i.log" 2>&1 &
    NATS_PIDS_ARRAY+=("$!")
    servers+=("$!")
    cap_cpu "$i" "$!"
  done
  NATS_PIDS=$(IFS=,; echo "${NATS_PIDS_ARRAY[*]}")
  local url="$scheme://127.0.0.1:$((BASE_PORT + 41))"
  wait_until 150 "$NATS" --server "$url" "${NATS_CLIENT_TLS[@]}" stream add bench --subjects bench --storage file --replicas 3 \
    --retention limits --discard old --defaults ||
    { echo "could not create the NATS stream; see $WORK/nats-?.log" >&2; return 1; }
  # The clients talk to the stream's leader, as ProgLog's do.
  local leader
  leader=$("$NATS" --server "$url" "${NATS_CLIENT_TLS[@]}" stream info bench --json | jq -r '.cluster.leader')
  [[ $leader == n? ]] || { echo "NATS stream has no leader: '$leader'" >&2; return 1; }
  NATS_LEADER="$scheme://127.0.0.1:$((BASE_PORT + 41 + ${leader#n}))"
}

nats_stop() {
  local pid
  stop_processes "${NATS_PIDS_ARRAY[@]}"
  for pid in "${NATS_PIDS_ARRAY[@]}"; do forget_server "$pid"; done
  NATS_PIDS_ARRAY=()
  rm -rf "$WORK"/nats-?
}

nats_load() {
  local round=$1 load=$2 records out=$WORK/out-$SYSTEM-$1-$2 args
  records=$(records_for "$load")
  case $load in
    c[0-9]*) args=(js pub sync bench --clients "${load#c}") ;;
    stream) args=(js pub async bench --clients 1 --batch 500) ;;
    consume) args=(js ordered --clients 1) ;;
  esac
  measured "$SYSTEM" "$round" "$load" "$records" "$out" "$NATS_PIDS" -- \
    "$NATS" --server "$NATS_LEADER" "${NATS_CLIENT_TLS[@]}" bench "${args[@]}" --stream bench --msgs "$records" --size "$SIZE" --no-progress || return 1
  # One client: "... stats: 1,234 msgs/sec ~ ... ~ P50: 123.4us ~ P90: ... ~ P99: 456.7us ...";
  # several: "... aggregated stats: 1,234 msgs/sec ~ ..." and "latencies per operation ... | P50
  # 123.4us | P90 ... | P99 456.7us | ...". Async publish latencies are per batch of 500.
  python3 - "$out" <<'EOF' | while read -r metric value; do record "$SYSTEM" "$round" "$load" "$metric" "$value"; done
import re, sys
text = open(sys.argv[1]).read()
rates = re.findall(r"aggregated stats: ([\d,]+) msgs/sec", text) or re.findall(r" stats: ([\d,]+) msgs/sec", text)
print("records_per_s", rates[-1].replace(",", ""))
for q, name in (("50", "p50_ms"), ("99", "p99_ms")):
    found = re.findall(r"P" + q + r":? ([\d,.]+)us", text)
    if found:
        print(name, float(found[-1].replace(",", "")) / 1000)
EOF
}
