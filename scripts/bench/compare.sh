#!/usr/bin/env bash
# `make bench-compare`: ProgLog against the systems a user would otherwise pick, same machine,
# same run. On loopback it starts, one after the other, a 3-node ProgLog Raft cluster (mTLS), a
# 3-node etcd cluster and a 3-node NATS JetStream cluster (R3 file stream, fsync before
# acknowledging) — the peers both without TLS and with mutual TLS like ProgLog's — each on fresh
# data directories, and measures for SIZE-byte records:
#   - throughput and p50/p99 latency at each of CLIENTS concurrent clients that wait for every
#     acknowledgement (ProgLog unary Produce, etcd put, NATS synchronous JetStream publish),
#   - one streaming / asynchronous publisher (ProgLog ProduceStream, NATS async publish; etcd's
#     benchmark tool has none),
#   - one consumer reading records written before (ProgLog ConsumeStream, NATS ordered consumer;
#     etcd is a key-value store without a log to consume),
#   - per run, CPU seconds per 1 000 records (utime + stime of the 3 server processes, from
#     /proc/PID/stat), bytes written to disk per record (write_bytes of /proc/PID/io), thread
#     wake-ups per record (voluntary context switches of every server thread) and read/write
#     system calls per record (syscr + syscw of /proc/PID/io),
#   - the machine's limits in the same run: fsync rate and fsync'd MB/s (disk-limits.sh) and the
#     bandwidth of one TLS connection on loopback (OpenSSL through Python's ssl module).
# ROUNDS rounds, each measuring the limits and then every system, the order rotating per round,
# so that drift on a shared machine hits all of them alike. Prints the settings of each system and
# one Markdown table: medians over rounds [min–max], and ProgLog ÷ the best peer per row.
#
# The peers are built by peers.sh (Go through the module proxy; Kafka's jars with Maven), cached
# under $HOME/.cache/proglog/peers; the ProgLog binaries come from `make release`. Every server process and the work directory
# are removed on exit, Ctrl-C included.
#
# Environment:
#   QUICK=1         smoke run: RECORDS=2000 STREAM_RECORDS=20000 ROUNDS=1, short limit probes
#   RECORDS         records per run at 16+ clients (default 20000; 1 client writes a tenth)
#   STREAM_RECORDS  records of the streaming / async publisher run (default 200000)
#   CONSUME_RECORDS records the consumer reads from the start (default STREAM_RECORDS)
#   CLIENTS         concurrent client counts (default "1 16 128")
#   ROUNDS          rounds (default 2)
#   SIZE            record size in bytes (default 1024)
#   SYSTEMS         systems to run (default "proglog etcd nats etcd-tls nats-tls"; the -tls ones
#                   are etcd and NATS with mutual TLS for clients and peers, like ProgLog; add
#                   "kafka" for Apache Kafka in KRaft mode, see compare-kafka.sh)
#   BASE_PORT       first of the loopback ports used (default 8700; see compare-systems.sh)
#   BENCH_DIR       where the data directories live (default $PROGLOG_BENCH_DIR, else /tmp)
#   RESULTS_OUT     also keep every measurement (tab-separated) in this file
#   BIN_DIR         the ProgLog binaries (default $CARGO_TARGET_DIR/release)
#   NODE_CPUS       cap every server process at this many CPUs (e.g. 0.5; needs root), as on
#                   separate machines of equal size; unset: all processes share the machine
#   SERVER_THREADS  ProgLog's --worker-threads (default: each of the three nodes' share of the
#                   machine, nproc / 3 rounded down and at least 1, or NODE_CPUS rounded up, as
#                   the operator sizes a node from its CPU request; "auto": one per CPU)
#   PEER_THREADS    threads the peers run their code on: GOMAXPROCS for etcd and NATS, the
#                   JVM's -XX:ActiveProcessorCount for Kafka (default "auto": their own default,
#                   one per CPU, which serves them best at 16 and 128 clients here)
#   KEEP=1          keep the work directory (logs, raw outputs)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BIN_DIR=${BIN_DIR:-${CARGO_TARGET_DIR:-$HOME/.cache/proglog/target}/release}
PROGLOG=$BIN_DIR/proglog
NODE=$BIN_DIR/proglog-node
if [[ -n ${QUICK:-} ]]; then
  RECORDS=${RECORDS:-2000} STREAM_RECORDS=${STREAM_RECORDS:-20000} ROUNDS=${ROUNDS:-1}
  LIMITS_SECONDS=${LIMITS_SECONDS:-3} LIMITS_DISK_MB=${LIMITS_DISK_MB:-32} LIMITS_TLS_MB=${LIMITS_TLS_MB:-128}
fi
RECORDS=${RECORDS:-20000}
STREAM_RECORDS=${STREAM_RECORDS:-200000}
CONSUME_RECORDS=${CONSUME_RECORDS:-$STREAM_RECORDS}
CLIENTS=${CLIENTS:-1 16 128}
ROUNDS=${ROUNDS:-2}
SIZE=${SIZE:-1024}
SYSTEMS=${SYSTEMS:-proglog etcd nats etcd-tls nats-tls}
BASE_PORT=${BASE_PORT:-8700}
LIMITS_SECONDS=${LIMITS_SECONDS:-10}
LIMITS_DISK_MB=${LIMITS_DISK_MB:-256}
LIMITS_TLS_MB=${LIMITS_TLS_MB:-1024}

die() { echo "compare.sh: $*" >&2; exit 1; }
for n in RECORDS STREAM_RECORDS CONSUME_RECORDS ROUNDS SIZE; do
  [[ ${!n} =~ ^[1-9][0-9]*$ ]] || die "$n must be a positive integer, got '${!n}'"
done
((RECORDS >= 10)) || die "RECORDS must be at least 10 (the 1-client run writes a tenth)"
# The consumer reads from the start of what the streaming run (at least) wrote before it.
((CONSUME_RECORDS <= STREAM_RECORDS)) || die "CONSUME_RECORDS must not exceed STREAM_RECORDS"
LOADS=()
for c in $CLIENTS; do
  [[ $c =~ ^[1-9][0-9]*$ ]] || die "CLIENTS must be positive integers, got '$c'"
  LOADS+=("c$c")
done
LOADS+=(stream consume)
for s in $SYSTEMS; do
  [[ $s =~ ^(proglog|etcd|nats|etcd-tls|nats-tls|kafka)$ ]] || die "unknown system '$s' (proglog, etcd, nats, etcd-tls, nats-tls, kafka)"
done
[[ -x $PROGLOG && -x $NODE ]] || die "no ProgLog release binaries in $BIN_DIR: run 'make release'"
for tool in curl jq python3; do command -v "$tool" >/dev/null || die "'$tool' is required"; done

# The peers' binaries (built on first use, then cached).
declare -A VERSIONS
while read -r name path version; do
  VERSIONS[$name]=$version
  case $name in
    etcd) ETCD=$path ;;
    benchmark) ETCD_BENCHMARK=$path ;;
    nats-server) NATS_SERVER=$path ;;
    nats) NATS=$path ;;
    kafka) KAFKA_LIBS=$path ;;
  esac
done < <(
  [[ " $SYSTEMS " != *" etcd"* ]] || "$SCRIPT_DIR/peers.sh" etcd
  [[ " $SYSTEMS " != *" nats"* ]] || "$SCRIPT_DIR/peers.sh" nats
  [[ " $SYSTEMS " != *" kafka "* ]] || "$SCRIPT_DIR/peers.sh" kafka
)
[[ " $SYSTEMS " != *" etcd"* || -x ${ETCD:-} ]] || die "building etcd failed"
[[ " $SYSTEMS " != *" nats"* || -x ${NATS:-} ]] || die "building NATS failed"
[[ " $SYSTEMS " != *" kafka "* || -d ${KAFKA_LIBS:-} ]] || die "fetching Kafka failed"

BENCH_DIR=${BENCH_DIR:-${PROGLOG_BENCH_DIR:-/tmp}}
WORK=$(mktemp -d "$BENCH_DIR/proglog-bench-compare.XXXXXX")
CERTS=$WORK/certs
RESULTS=$WORK/results.tsv
: >"$RESULTS"
pids=()    # ProgLog's nodes (lib.sh's launch_node fills it)
servers=() # every process cleanup must stop: servers of all systems, load generators

# shellcheck source=scripts/bench/lib.sh
source "$SCRIPT_DIR/lib.sh"
# shellcheck source=scripts/bench/compare-lib.sh
source "$SCRIPT_DIR/compare-lib.sh"
# shellcheck source=scripts/bench/compare-systems.sh
source "$SCRIPT_DIR/compare-systems.sh"
# shellcheck source=scripts/bench/compare-kafka.sh
source "$SCRIPT_DIR/compare-kafka.sh"

cleanup() {
  local status=$?
  trap - INT TERM
  ((${#servers[@]})) && stop_processes "${servers[@]}"
  remove_cpu_caps
  [[ -n ${RESULTS_OUT:-} && -f $RESULTS ]] && cp "$RESULTS" "$RESULTS_OUT"
  if [[ -n ${KEEP:-} ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$PROGLOG" certs --out "$CERTS" >/dev/null
DEFAULT_SERVER_THREADS=$(machine_share)
server_threads_init
PEER_THREADS=${PEER_THREADS:-auto}
[[ $PEER_THREADS == auto || $PEER_THREADS =~ ^[1-9][0-9]*$ ]] || die "PEER_THREADS must be a positive integer or 'auto', got '$PEER_THREADS'"
GO_SERVER_ENV=() JVM_THREADS=()
if [[ $PEER_THREADS != auto ]]; then
  GO_SERVER_ENV=("GOMAXPROCS=$PEER_THREADS") JVM_THREADS=("-XX:ActiveProcessorCount=$PEER_THREADS")
fi

started=$SECONDS
read -r -a systems <<<"$SYSTEMS"
for round in $(seq 1 "$ROUNDS"); do
  echo "round $round/$ROUNDS: machine limits" >&2
  limits_disk "$round"
  limits_tls "$round"
  # Rotate the order each round so no system always runs first (or last) on a drifting machine.
  for k in $(seq 0 $((${#systems[@]} - 1))); do
    SYSTEM=${systems[$(((k + round - 1) % ${#systems[@]}))]}
    TLS=""
    [[ $SYSTEM == *-tls ]] && TLS=1
    echo "round $round/$ROUNDS: $SYSTEM" >&2
    "${SYSTEM%-tls}_start"
    for load in "${LOADS[@]}"; do "${SYSTEM%-tls}_load" "$round" "$load"; done
    "${SYSTEM%-tls}_stop"
  done
done

echo "## ProgLog vs peers: 3 nodes each on loopback, $SIZE-byte records, $ROUNDS round(s), $(date -u '+%Y-%m-%d %H:%M UTC'), $((SECONDS - started)) s"
echo
if [[ -n ${NODE_CPUS:-} ]]; then cpus="every server process capped at $NODE_CPUS CPU (cgroup), load generators uncapped"
else cpus="shared by all processes, no CPU caps"; fi
threads="ProgLog --worker-threads $SERVER_THREADS; peers' threads (GOMAXPROCS, -XX:ActiveProcessorCount) $PEER_THREADS"
echo "Records per run: $RECORDS (1 client: $((RECORDS / 10)); streaming: $STREAM_RECORDS; consume: $CONSUME_RECORDS); $(nproc) CPUs, $cpus; $threads."
echo
for s in "${systems[@]}"; do
  case $s in
    proglog) echo "- ProgLog ($("$NODE" --version 2>/dev/null || echo proglog-node)): $PROGLOG_SETTINGS" ;;
    etcd) echo "- etcd (${VERSIONS[etcd]}; benchmark tool: ${VERSIONS[benchmark]}): $ETCD_SETTINGS" ;;
    nats) echo "- NATS (${VERSIONS[nats-server]}; load: nats bench of ${VERSIONS[nats]}): $NATS_SETTINGS" ;;
    etcd-tls) echo "- etcd with TLS: $ETCD_TLS_SETTINGS" ;;
    nats-tls) echo "- NATS with TLS: $NATS_TLS_SETTINGS" ;;
    kafka) echo "- Kafka (${VERSIONS[kafka]}, KRaft; load: its ProducerPerformance and ConsumerPerformance): $KAFKA_SETTINGS" ;;
  esac
done
echo
python3 - "$RESULTS" "$SYSTEMS" "${LOADS[*]}" <<'EOF'
import statistics, sys
from collections import defaultdict

results, systems, loads = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
values = defaultdict(list)  # (system, load, metric) -> one value per round
for line in open(results):
    system, _round, load, metric, value = line.rstrip("\n").split("\t")
    try:
        values[(system, load, metric)].append(float(value))
    except ValueError:
        values[(system, load, metric)].append(value)

def number(x):
    if x >= 100:
        return f"{x:,.0f}".replace(",", " ")
    if x >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"

def cell(samples):
    if not samples:
        return "—", None
    if isinstance(samples[0], str):
        return samples[0], None
    median = statistics.median(samples)
    if len(samples) == 1 or min(samples) == max(samples):
        return number(median), median
    return f"{number(median)} [{number(min(samples))}–{number(max(samples))}]", median

names = {"proglog": "ProgLog (mTLS)", "etcd": "etcd (no TLS)", "nats": "NATS JetStream R3 (no TLS)",
         "etcd-tls": "etcd (mTLS)", "nats-tls": "NATS JetStream R3 (mTLS)", "kafka": "Kafka KRaft R3 (no TLS)"}
load_names = {"stream": "1 streaming / async publisher", "consume": "1 consumer"}
metrics = [("records_per_s", "records/s", max), ("p50_ms", "p50 ms", min), ("p99_ms", "p99 ms", min),
           ("cpu_s_per_1000", "server CPU s / 1 000 records", min),
           ("disk_bytes_per_record", "disk bytes written / record", min),
           ("wakeups_per_record", "server thread wake-ups / record", min),
           ("io_syscalls_per_record", "server read+write system calls / record", min)]
peers = [s for s in systems if s != "proglog"]
header = ["load", "metric"] + [names[s] for s in systems]
if "proglog" in systems and peers:
    header.append("ProgLog ÷ best peer")
print("| " + " | ".join(header) + " |")
print("|" + "---|" * 2 + "---:|" * (len(header) - 2))
for load in loads:
    label = load_names.get(load) or f"{load[1:]} client{'s' if load != 'c1' else ''}"
    for metric, metric_label, best in metrics:
        cells = {s: cell(values.get((s, load, metric), [])) for s in systems}
        if all(c[1] is None for c in cells.values()):
            continue
        row = [label, metric_label] + [cells[s][0] for s in systems]
        if "proglog" in systems and peers and load == "stream" and metric in ("p50_ms", "p99_ms"):
            row.append("— (per record vs per batch)")
        elif "proglog" in systems and peers:
            peer_medians = [cells[s][1] for s in peers if cells[s][1] is not None]
            ours = cells["proglog"][1]
            row.append(f"{ours / best(peer_medians):.2f}" if ours is not None and peer_medians and best(peer_medians) > 0 else "—")
        print("| " + " | ".join(row) + " |")
print()
print("Ratios: above 1 is better for records/s, below 1 is better for the other rows. "
      "NATS async-publish latencies are per batch of 500 messages; ProgLog's streaming latency is per record, send to acknowledgement"
      + ("; Kafka's producer latencies per record include the time queued in the producer. " if "kafka" in systems else ". ") +
      "CPU, disk, wake-ups and system calls count the 3 server processes only (not the load generator); "
      "a wake-up is a voluntary context switch of a server thread (it blocked and was woken).")
print()
print("| machine limit (same run) | value |")
print("|---|---:|")
tool = values.get(("machine", "limits", "disk_tool"), ["?"])[0]
cipher = values.get(("machine", "limits", "tls_cipher"), ["?"])[0]
for metric, label in (("fsync_per_s", f"fsync rate, 4 KiB write + fdatasync, per s ({tool})"),
                      ("fsync_mb_per_s", f"fsync'd sequential write, 1 MiB writes, MB/s ({tool})"),
                      ("tls_mb_per_s", f"one TLS 1.3 connection on loopback, one way, MB/s ({cipher})")):
    print(f"| {label} | {cell(values.get(('machine', 'limits', metric), []))[0]} |")
EOF
