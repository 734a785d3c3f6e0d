#!/usr/bin/env bash
# Measures this machine's durable-write limits, the yardsticks for the storage engine's
# benchmarks (docs/BENCHMARKS.md):
#   - fsync'd sequential write bandwidth with 1 MiB writes (one fdatasync after every write),
#   - fsync rate: 4 KiB writes, each followed by fdatasync (what a batch of 1 costs at best),
#   - buffered sequential write bandwidth (no fsync) for reference.
# Uses fio when installed (apt-get install -y fio), else dd with oflag=dsync.
#
# Usage: scripts/bench/disk-limits.sh [DIR]   (default: $PROGLOG_BENCH_DIR, else /tmp)
#        RUNTIME=10 SIZE_MB=512 scripts/bench/disk-limits.sh
#        FORCE_DD=1 SIZE_MB=64 scripts/bench/disk-limits.sh   (the dd fallback even with fio)
set -euo pipefail

dir="${1:-${PROGLOG_BENCH_DIR:-/tmp}}"
runtime="${RUNTIME:-10}"
size_mb="${SIZE_MB:-512}"
work="$(mktemp -d "$dir/disk-limits.XXXXXX")"
trap 'rm -rf "$work"' EXIT

echo "directory: $dir ($(df -hT "$dir" | awk 'NR==2 {print $1, $2}'))"
echo "cpus: $(nproc), kernel: $(uname -r)"

# fio_run NAME ARGS... prints "<bytes/s> <writes/s>" of the write side.
fio_run() {
    local name="$1"
    shift
    fio --name="$name" --directory="$work" --rw=write --ioengine=psync --numjobs=1 \
        --size="${size_mb}M" --time_based --runtime="$runtime" --group_reporting \
        --output-format=json "$@" |
        python3 -c 'import json,sys; w=json.load(sys.stdin)["jobs"][0]["write"]; print(int(w["bw_bytes"]), round(w["iops"]))'
    rm -f "$work/$name"*
}

report() {
    # report LABEL BYTES_PER_S WRITES_PER_S
    awk -v label="$1" -v bw="$2" -v ops="$3" \
        'BEGIN { printf "%-44s %10.1f MB/s %10.0f writes/s\n", label, bw / 1e6, ops }'
}

if [ -z "${FORCE_DD:-}" ] && command -v fio >/dev/null 2>&1; then
    echo "tool: $(fio --version), runtime ${runtime}s per test"
    read -r bw ops < <(fio_run seq1m_fsync --bs=1M --fdatasync=1)
    report "fsync'd sequential write, 1 MiB writes" "$bw" "$ops"
    read -r bw ops < <(fio_run seq4k_fsync --bs=4k --fdatasync=1)
    report "fsync rate, 4 KiB write + fdatasync" "$bw" "$ops"
    read -r bw ops < <(fio_run seq1m_buffered --bs=1M --end_fsync=1)
    report "buffered sequential write (one final fsync)" "$bw" "$ops"
else
    echo "tool: dd oflag=dsync (fio not installed, or FORCE_DD set)"
    # dd_run BS COUNT: bytes/s and writes/s of COUNT synchronous writes of BS.
    dd_run() {
        local start end
        start=$(date +%s.%N)
        dd if=/dev/zero of="$work/dd" bs="$1" count="$2" oflag=dsync status=none
        end=$(date +%s.%N)
        rm -f "$work/dd"
        awk -v s="$start" -v e="$end" -v bs="$3" -v n="$2" \
            'BEGIN { t = e - s; printf "%d %d\n", bs * n / t, n / t }'
    }
    read -r bw ops < <(dd_run 1M "$size_mb" $((1024 * 1024)))
    report "fsync'd sequential write, 1 MiB writes" "$bw" "$ops"
    read -r bw ops < <(dd_run 4k 2000 4096)
    report "fsync rate, 4 KiB write + dsync" "$bw" "$ops"
fi
