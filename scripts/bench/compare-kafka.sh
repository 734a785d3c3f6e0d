# shellcheck shell=bash
# Sourced by compare.sh: Apache Kafka in KRaft mode as an optional peer (SYSTEMS="... kafka"), with
# the same kafka_start / kafka_load / kafka_stop contract as compare-systems.sh. Three processes,
# each broker and controller (the three controllers are the metadata quorum), run from the jars
# peers.sh fetched (KAFKA_LIBS), with the JVM options Kafka's own launch scripts use.
# Durability as equal as Kafka allows: topic "bench" with 3 replicas, producer acks=all,
# min.insync.replicas=2 and log.flush.interval.messages=1 (Kafka's default leaves fsync to the OS
# and relies on replication). Kafka's tools measure only an asynchronous producer
# (ProducerPerformance) and a consumer (ConsumerPerformance): the rows of clients waiting for
# each acknowledgement stay empty for it. No TLS.
# Ports: BASE_PORT+91.. brokers, +94.. controllers.
# shellcheck disable=SC2034,SC2153 # KAFKA_SETTINGS is printed and RECORDS etc. set by compare.sh

KAFKA_SETTINGS="process.roles=broker,controller on each of the 3 (static controller.quorum.voters), log.flush.interval.messages=1, min.insync.replicas=2, default.replication.factor=3; topic bench: 1 partition, replication factor 3; producer acks=all (idempotence on, Kafka's default); broker JVM -Xms1g -Xmx1g -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 (kafka-server-start's defaults); no TLS"
# The options Kafka's kafka-run-class.sh / kafka-server-start.sh pass to the JVM.
KAFKA_BROKER_JVM=(-Xms1g -Xmx1g -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
  -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true)
KAFKA_TOOL_JVM=(-Xmx512m -XX:+UseG1GC -Djava.awt.headless=true)

# kafka_java CLASS ARGS...: runs one of Kafka's tools in the foreground. (The measured load
# generators call java directly instead, so that the process cleanup stops is the JVM itself.)
kafka_java() { java "${KAFKA_TOOL_JVM[@]}" -cp "$KAFKA_LIBS/*" "$@"; }

kafka_start() {
  local i voters="" cluster_id conf
  KAFKA_PIDS_ARRAY=()
  for i in 0 1 2; do voters+="${voters:+,}$((i + 1))@127.0.0.1:$((BASE_PORT + 94 + i))"; done
  KAFKA_BOOTSTRAP="127.0.0.1:$((BASE_PORT + 91))"
  cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
  for i in 0 1 2; do
    mkdir -p "$WORK/kafka-$i"
    conf=$WORK/kafka-$i/server.properties
    cat >"$conf" <<CONF
process.roles=broker,controller
node.id=$((i + 1))
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$((BASE_PORT + 91 + i)),CONTROLLER://127.0.0.1:$((BASE_PORT + 94 + i))
advertised.listeners=PLAINTEXT://127.0.0.1:$((BASE_PORT + 91 + i))
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$WORK/kafka-$i/data
num.partitions=1
default.replication.factor=3
min.insync.replicas=2
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
log.flush.interval.messages=1
CONF
    kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$conf" >>"$WORK/kafka-$i.log" 2>&1 ||
      { echo "formatting Kafka's storage failed; see $WORK/kafka-$i.log" >&2; return 1; }
    java "${KAFKA_BROKER_JVM[@]}" ${JVM_THREADS[@]+"${JVM_THREADS[@]}"} -cp "$KAFKA_LIBS/*" kafka.Kafka "$conf" >>"$WORK/kafka-$i.log" 2>&1 &
    KAFKA_PIDS_ARRAY+=("$!")
    servers+=("$!")
    cap_cpu "$i" "$!"
  done
  KAFKA_PIDS=$(IFS=,; echo "${KAFKA_PIDS_ARRAY[*]}")
  # Creating the topic succeeds once the quorum has a leader and the brokers registered.
  wait_until 150 kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$KAFKA_BOOTSTRAP" \
    --create --topic bench --partitions 1 --replication-factor 3 ||
    { echo "could not create the Kafka topic; see $WORK/kafka-?.log" >&2; return 1; }
}

kafka_stop() {
  local pid
  stop_processes "${KAFKA_PIDS_ARRAY[@]}"
  for pid in "${KAFKA_PIDS_ARRAY[@]}"; do forget_server "$pid"; done
  KAFKA_PIDS_ARRAY=()
  rm -rf "$WORK"/kafka-?
}

kafka_load() {
  local round=$1 load=$2 records out=$WORK/out-$SYSTEM-$1-$2
  records=$(records_for "$load")
  case $load in
    stream)
      measured "$SYSTEM" "$round" "$load" "$records" "$out" "$KAFKA_PIDS" -- \
        java "${KAFKA_TOOL_JVM[@]}" -cp "$KAFKA_LIBS/*" org.apache.kafka.tools.ProducerPerformance --topic bench --num-records "$records" \
        --record-size "$SIZE" --throughput -1 --producer-props "bootstrap.servers=$KAFKA_BOOTSTRAP" acks=all || return 1
      # Last line: "N records sent, R records/sec (...), A ms avg latency, M ms max latency,
      # P50 ms 50th, P95 ms 95th, P99 ms 99th, P999 ms 99.9th."
      tail -n 1 "$out" | awk -v sys="$SYSTEM" -v round="$round" -v load="$load" -F', ' '{
        split($2, r, " "); split($5, p50, " "); split($7, p99, " ")
        printf "%s\t%s\t%s\trecords_per_s\t%s\n%s\t%s\t%s\tp50_ms\t%s\n%s\t%s\t%s\tp99_ms\t%s\n",
          sys, round, load, r[1], sys, round, load, p50[1], sys, round, load, p99[1] }' >>"$RESULTS"
      ;;
    consume)
      measured "$SYSTEM" "$round" "$load" "$records" "$out" "$KAFKA_PIDS" -- \
        java "${KAFKA_TOOL_JVM[@]}" -cp "$KAFKA_LIBS/*" org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$KAFKA_BOOTSTRAP" \
        --topic bench --num-records "$records" || return 1
      # Header "start.time, ..., fetch.nMsg.sec" then the values: fetch.nMsg.sec leaves out the
      # consumer group's join (rebalance.time.ms).
      awk -F', ' -v sys="$SYSTEM" -v round="$round" -v load="$load" '
        $1 == "start.time" { for (i = 1; i <= NF; i++) col[$i] = i; n = NF; next }
        n && NF == n && ("fetch.nMsg.sec" in col) { v = $(col["fetch.nMsg.sec"]) }
        END { if (v != "") printf "%s\t%s\t%s\trecords_per_s\t%s\n", sys, round, load, v }' "$out" >>"$RESULTS"
      ;;
    *) return 0 ;; # no tool for clients that wait for each acknowledgement
  esac
}
