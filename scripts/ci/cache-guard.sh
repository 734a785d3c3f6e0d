#!/usr/bin/env bash
# Keeps the build cache under $HOME/.cache/proglog from filling the disk. Cargo never deletes
# stale artifacts: every dependency bump or feature set leaves its old test binaries behind, and
# incremental state grows without bound. CI runs this first; it prunes only what a build recreates.
#   PROGLOG_CACHE_MAX_GB   the target directory's budget (default 40)
#   PROGLOG_MIN_FREE_GB    free space the disk must keep (default 15)
set -euo pipefail

cache_dir="${PROGLOG_CACHE_DIR:-$HOME/.cache/proglog}"
target="${CARGO_TARGET_DIR:-$cache_dir/target}"
max_gb="${PROGLOG_CACHE_MAX_GB:-40}"
min_free_gb="${PROGLOG_MIN_FREE_GB:-15}"

size_gb() { [[ -d "$1" ]] && du -s --block-size=1G "$1" | cut -f1 || echo 0; }
free_gb() { df --output=avail --block-size=1G "$(dirname "$target")" | tail -1 | tr -d ' '; }
over() { (($(size_gb "$target") > max_gb || $(free_gb) < min_free_gb)); }

mkdir -p "$(dirname "$target")"
echo "[cache-guard] $target: $(size_gb "$target") GiB (budget $max_gb), disk free $(free_gb) GiB (floor $min_free_gb)"
# Cheapest first: incremental state is only a speed-up for edit-compile loops.
for dir in "$target/debug/incremental" "$target/release/incremental" "$target/debug" "$target/release"; do
    over || exit 0
    if [[ -d "$dir" ]]; then
        echo "[cache-guard] over budget: removing $dir"
        rm -rf "$dir"
    fi
done
if over; then
    echo "[cache-guard] still over budget after pruning the build cache: free disk space (need $min_free_gb GiB)" >&2
    exit 1
fi
