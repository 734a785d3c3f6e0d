#!/usr/bin/env bash
# `make fuzz`: runs every cargo-fuzz target of fuzz/ for $FUZZ_SECONDS (default 60) each and
# prints executions per second. Needs the nightly toolchain (installed with rustup if missing)
# and cargo-fuzz (built once into $PROGLOG_CACHE_DIR/tools). A crash stops the run; its input is
# in fuzz/artifacts/<target>/ — replay it with `cargo +nightly fuzz run <target> <file>` and
# turn it into a regression test next to the code it broke.
#   scripts/fuzz.sh [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE_DIR="${PROGLOG_CACHE_DIR:-$HOME/.cache/proglog}"
SECONDS_EACH="${FUZZ_SECONDS:-60}"
TOOLS="$CACHE_DIR/tools/cargo-fuzz"
log() { printf '[fuzz] %s\n' "$*" >&2; }

if ! rustup toolchain list | grep -q '^nightly'; then
    log "installing the nightly toolchain (libFuzzer needs it)"
    rustup toolchain install nightly --profile minimal >/dev/null
fi
if [[ ! -x "$TOOLS/bin/cargo-fuzz" ]]; then
    log "building cargo-fuzz into $TOOLS"
    cargo install --locked --quiet --root "$TOOLS" cargo-fuzz
fi
export PATH="$TOOLS/bin:$PATH"
# Its own target directory: sanitizer flags would rebuild the workspace's cache otherwise.
export CARGO_TARGET_DIR="$CACHE_DIR/fuzz-target"

targets=("$@")
if ((${#targets[@]} == 0)); then
    mapfile -t targets < <(cargo +nightly fuzz list --fuzz-dir fuzz)
fi
for target in "${targets[@]}"; do
    corpus="$CACHE_DIR/fuzz-corpus/$target"
    mkdir -p "$corpus"
    log "$target: ${SECONDS_EACH}s"
    out="$(mktemp)"
    if ! cargo +nightly fuzz run --fuzz-dir fuzz "$target" "$corpus" -- \
        -max_total_time="$SECONDS_EACH" -print_final_stats=1 >"$out" 2>&1; then
        tail -n 40 "$out" >&2
        log "$target: CRASH (input under fuzz/artifacts/$target)"
        rm -f "$out"
        exit 1
    fi
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$out" | grep -o '[0-9]*$' || echo 0)"
    rm -f "$out"
    log "$target: $runs executions, $((runs / SECONDS_EACH))/s, no crash"
done
