#!/usr/bin/env bash
# grafana-dashboard-check.sh [FILE...]: builds scripts/tools/grafana-dashboard-check (a small Go
# program) once, cached per machine, then checks each Grafana dashboard JSON FILE against
# Grafana's dashboard schema and checks its data source and variable references. Without
# arguments it only builds and prints the binary's path. Exit status 1 when a FILE fails, with one
# line per problem on stderr.
#
# Which schema, and why this one: Grafana defines the dashboard and every core panel plugin's
# options in CUE; github.com/grafana/grafana-foundation-sdk/go is the Go code Grafana generates
# from those CUE kinds (with its generator, cog), published on the Go module proxy. Its strict
# decoding rejects unknown fields where the CUE definition is closed, wrong types and missing
# required fields, per panel plugin (timeseries, stat, ...) and per data source query
# (prometheus); Validate checks the CUE constraints (gridPos bounds, ...). It is Apache-2.0. The
# alternatives: the CUE kinds themselves are in github.com/grafana/grafana (AGPL, and the module
# proxy refuses it and its apps/dashboard module anyway); npm's @grafana/schema has the same
# kinds as TypeScript types only, and a type check of an imported JSON file skips the excess
# property check, so unknown fields would pass; grafana/dashboard-linter (lint rules, not the
# schema) is not served by the proxy. go.mod and go.sum next to the program pin the SDK at
# v0.0.22, the only version the proxy serves; its dashboard kind is the current v1 model
# (NewDashboard defaults to schemaVersion 42), which takes schemaVersion as plain data, so a
# dashboard exported at 39 is checked against today's field definitions.
#
# Output (cached, keyed by SDK version and a hash of the program's sources, never inside the
# repository):
#   $PROGLOG_CACHE_DIR/tools/grafana-dashboard-check-<sdk version>-<source hash>/grafana-dashboard-check
#   (+ .stamp, written last)
# Editing the program changes the hash, so the next run rebuilds it.
#
# Environment:
#   PROGLOG_CACHE_DIR   cache root (default $HOME/.cache/proglog)
#   BUILD_PARALLELISM   go build -p (default 2: the machine is shared)
set -euo pipefail

SRC_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/grafana-dashboard-check" && pwd)"
PROGLOG_CACHE_DIR="${PROGLOG_CACHE_DIR:-$HOME/.cache/proglog}"
BUILD_PARALLELISM="${BUILD_PARALLELISM:-2}"
SDK_MODULE=github.com/grafana/grafana-foundation-sdk/go

log() { printf '[tools/grafana-dashboard-check] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

SDK_VERSION="$(awk -v m="$SDK_MODULE" '$1 == "require" && $2 == m { print $3 }' "$SRC_DIR/go.mod")"
[[ "$SDK_VERSION" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] ||
    die "no pinned '$SDK_MODULE vX.Y.Z' require line in $SRC_DIR/go.mod"
SOURCE_HASH="$(cd "$SRC_DIR" && LC_ALL=C sha256sum go.mod go.sum ./*.go | sha256sum | cut -c1-12)"
CHECK_DIR="$PROGLOG_CACHE_DIR/tools/grafana-dashboard-check-$SDK_VERSION-$SOURCE_HASH"
CHECK_BIN="$CHECK_DIR/grafana-dashboard-check"
STAMP_WANT="grafana-dashboard-check sdk=$SDK_VERSION source=$SOURCE_HASH"

build_check() {
    command -v go >/dev/null 2>&1 || die "the Go toolchain is required; 'go' is not on PATH"
    log "building grafana-dashboard-check with $SDK_MODULE $SDK_VERSION (cold: 20-60s on 2 cores)"
    local started=$SECONDS
    mkdir -p "$CHECK_DIR"
    rm -f "$CHECK_DIR/.stamp"
    # -mod=readonly: the versions and hashes are go.mod's and go.sum's, never resolved anew.
    # GOTOOLCHAIN=local: go.mod's `go 1.22` is a minimum; never download another toolchain.
    GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=readonly -trimpath -buildvcs=false" \
        go -C "$SRC_DIR" build -p "$BUILD_PARALLELISM" -ldflags "-s -w" -o "$CHECK_BIN" . ||
        die "go build in $SRC_DIR failed"
    [[ -x "$CHECK_BIN" ]] || die "go build finished but $CHECK_BIN is missing"
    printf '%s\nbuilt-with=%s\n' "$STAMP_WANT" "$(GOTOOLCHAIN=local go env GOVERSION)" >"$CHECK_DIR/.stamp"
    log "built in $((SECONDS - started))s: $CHECK_BIN"
}

[[ -f "$CHECK_DIR/.stamp" && "$(head -n 1 "$CHECK_DIR/.stamp")" == "$STAMP_WANT" && -x "$CHECK_BIN" ]] ||
    build_check

if (($# == 0)); then
    printf '%s\n' "$CHECK_BIN"
    exit 0
fi
exec "$CHECK_BIN" "$@"
