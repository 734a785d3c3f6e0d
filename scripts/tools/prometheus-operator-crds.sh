#!/usr/bin/env bash
# prometheus-operator-crds.sh: fetches the Prometheus Operator's CustomResourceDefinitions for
# the kinds the chart can render (PodMonitor, ServiceMonitor, PrometheusRule) from the Go module
# github.com/prometheus-operator/prometheus-operator (its example/prometheus-operator-crd/),
# through the Go module proxy, caches them per machine and prints the directory holding them.
#
# scripts/chart-check.sh installs them on its throwaway API server, so the server-side dry run
# validates the chart's monitoring objects against the real schemas.
#
# Output (cached, keyed by version, never inside the repository):
#   $PROGLOG_CACHE_DIR/tools/prometheus-operator-crds-<version>/monitoring.coreos.com_*.yaml
#
# Environment:
#   PROGLOG_CACHE_DIR              cache root (default $HOME/.cache/proglog)
#   PROMETHEUS_OPERATOR_VERSION    module version (default below)
set -euo pipefail

# The newest version of the module on the Go module proxy when pinned
# (`go list -m -versions github.com/prometheus-operator/prometheus-operator`).
PROMETHEUS_OPERATOR_VERSION="${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}"
PROGLOG_CACHE_DIR="${PROGLOG_CACHE_DIR:-$HOME/.cache/proglog}"
KINDS=(podmonitors servicemonitors prometheusrules)

log() { printf '[tools/prometheus-operator-crds] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ "$PROMETHEUS_OPERATOR_VERSION" =~ ^v0\.[0-9]+\.[0-9]+$ ]] ||
    die "PROMETHEUS_OPERATOR_VERSION must be a release like v0.85.0, got '$PROMETHEUS_OPERATOR_VERSION'"
CRD_DIR="$PROGLOG_CACHE_DIR/tools/prometheus-operator-crds-$PROMETHEUS_OPERATOR_VERSION"
STAMP_WANT="prometheus-operator=$PROMETHEUS_OPERATOR_VERSION kinds=${KINDS[*]}"

is_fresh() {
    [[ -f "$CRD_DIR/.stamp" && "$(head -n 1 "$CRD_DIR/.stamp")" == "$STAMP_WANT" ]] || return 1
    local kind
    for kind in "${KINDS[@]}"; do [[ -s "$CRD_DIR/monitoring.coreos.com_$kind.yaml" ]] || return 1; done
}

if ! is_fresh; then
    command -v go >/dev/null 2>&1 || die "the Go toolchain is required; 'go' is not on PATH"
    module="github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION"
    log "downloading $module"
    download="$(go mod download -json "$module")" ||
        die "cannot download $module: $(sed -n 's/^[[:space:]]*"Error": //p' <<<"$download")"
    src="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$download")/example/prometheus-operator-crd"
    [[ -d "$src" ]] || die "no example/prometheus-operator-crd in $module ($download)"
    mkdir -p "$CRD_DIR"
    rm -f "$CRD_DIR/.stamp"
    for kind in "${KINDS[@]}"; do
        install -m 0644 "$src/monitoring.coreos.com_$kind.yaml" "$CRD_DIR/" || die "$module has no CRD for $kind"
    done
    printf '%s\n' "$STAMP_WANT" >"$CRD_DIR/.stamp"
    log "cached the CRDs of ${KINDS[*]} in $CRD_DIR"
fi
printf '%s\n' "$CRD_DIR"
