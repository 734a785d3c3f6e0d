#!/usr/bin/env bash
# promtool.sh [PROMTOOL-ARGS...]: builds promtool (github.com/prometheus/prometheus/cmd/promtool)
# at a pinned version with `go install` through the Go module proxy (no binary downloads), cached
# per machine, then runs it with PROMTOOL-ARGS. Without arguments it only builds and prints the
# binary's path.
#
# scripts/chart-check.sh uses it to check the chart's PrometheusRule (`promtool check rules`,
# `promtool test rules`) and the PromQL of every Grafana dashboard panel.
#
# Output (cached, keyed by version, never inside the repository):
#   $PROGLOG_CACHE_DIR/tools/promtool-<version>/promtool (+ .stamp, written last)
#
# Environment:
#   PROGLOG_CACHE_DIR   cache root (default $HOME/.cache/proglog)
#   PROMTOOL_VERSION    github.com/prometheus/prometheus module version (v0.3xx.y is Prometheus v3.xx.y)
#   BUILD_PARALLELISM   go build -p (default 2: the machine is shared)
set -euo pipefail

# Newest release on the Go module proxy when pinned (`go list -m -versions github.com/prometheus/prometheus`);
# module v0.316.0 is Prometheus v3.16.0.
PROMTOOL_VERSION="${PROMTOOL_VERSION:-v0.316.0}"
PROGLOG_CACHE_DIR="${PROGLOG_CACHE_DIR:-$HOME/.cache/proglog}"
BUILD_PARALLELISM="${BUILD_PARALLELISM:-2}"

log() { printf '[tools/promtool] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ "$PROMTOOL_VERSION" =~ ^v0\.[0-9]+\.[0-9]+$ ]] ||
    die "PROMTOOL_VERSION must be a module release like v0.316.0, got '$PROMTOOL_VERSION'"
PROMTOOL_DIR="$PROGLOG_CACHE_DIR/tools/promtool-$PROMTOOL_VERSION"
PROMTOOL_BIN="$PROMTOOL_DIR/promtool"
STAMP_WANT="promtool=$PROMTOOL_VERSION"

# The release name Prometheus itself reports: module v0.<3MM>.<patch> is Prometheus v3.<MM>.<patch>.
prometheus_release() {
    local rest="${PROMTOOL_VERSION#v0.}" minor patch
    minor="${rest%%.*}" patch="${rest#*.}"
    printf 'v%d.%d.%s' "$((minor / 100))" "$((minor % 100))" "$patch"
}

build_promtool() {
    command -v go >/dev/null 2>&1 || die "the Go toolchain is required; 'go' is not on PATH"
    log "building promtool $PROMTOOL_VERSION with go install (cold: a few minutes on 2 cores)"
    local started=$SECONDS release
    release="$(prometheus_release)"
    mkdir -p "$PROMTOOL_DIR"
    rm -f "$PROMTOOL_DIR/.stamp"
    # `go install PKG@VERSION` builds from Prometheus' own go.mod and go.sum. The build tags are
    # the ones Prometheus' release uses to leave out UI assets promtool does not need.
    GOBIN="$PROMTOOL_DIR" CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" \
        go install -p "$BUILD_PARALLELISM" -tags netgo,builtinassets \
        -ldflags "-s -w -X github.com/prometheus/common/version.Version=${release#v}" \
        "github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION" ||
        die "go install github.com/prometheus/prometheus/cmd/promtool@$PROMTOOL_VERSION failed"
    [[ -x "$PROMTOOL_BIN" ]] || die "go install finished but $PROMTOOL_BIN is missing"
    printf '%s\nbuilt-with=%s\n' "$STAMP_WANT" "$(go env GOVERSION)" >"$PROMTOOL_DIR/.stamp"
    log "built promtool $PROMTOOL_VERSION ($release) in $((SECONDS - started))s: $PROMTOOL_BIN"
}

[[ -f "$PROMTOOL_DIR/.stamp" && "$(head -n 1 "$PROMTOOL_DIR/.stamp")" == "$STAMP_WANT" && -x "$PROMTOOL_BIN" ]] ||
    build_promtool

if (($# == 0)); then
    printf '%s\n' "$PROMTOOL_BIN"
    exit 0
fi
exec "$PROMTOOL_BIN" "$@"
