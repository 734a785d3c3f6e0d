#!/usr/bin/env bash
# crictl.sh [CRICTL-ARGS...]: builds crictl (sigs.k8s.io/cri-tools/cmd/crictl) at a pinned
# version with `go install` through the Go module proxy, cached per machine, then runs it with
# CRICTL-ARGS. Without arguments it only builds and prints the binary's path.
#
# The local cluster (scripts/local-cluster/) uses it to debug pods and, in down.sh, to remove
# every pod sandbox through the CRI, so the CNI plugin deletes its veths and iptables rules.
#
# Output: $PROGLOG_CACHE_DIR/tools/crictl-<version>/crictl (+ .stamp, written last).
set -euo pipefail

# The cri-tools release matching the kubelet's minor version (`go list -m -versions sigs.k8s.io/cri-tools`).
CRICTL_VERSION="${CRICTL_VERSION:-v1.34.0}"
PROGLOG_CACHE_DIR="${PROGLOG_CACHE_DIR:-$HOME/.cache/proglog}"

log() { printf '[tools/crictl] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ "$CRICTL_VERSION" =~ ^v1\.[0-9]+\.[0-9]+$ ]] || die "CRICTL_VERSION must be a release like v1.34.0, got '$CRICTL_VERSION'"
CRICTL_DIR="$PROGLOG_CACHE_DIR/tools/crictl-$CRICTL_VERSION"
CRICTL_BIN="$CRICTL_DIR/crictl"
STAMP_WANT="crictl=$CRICTL_VERSION"

if ! [[ -f "$CRICTL_DIR/.stamp" && "$(head -n 1 "$CRICTL_DIR/.stamp")" == "$STAMP_WANT" && -x "$CRICTL_BIN" ]]; then
    command -v go >/dev/null 2>&1 || die "the Go toolchain is required; 'go' is not on PATH"
    log "building crictl $CRICTL_VERSION"
    started=$SECONDS
    mkdir -p "$CRICTL_DIR"
    rm -f "$CRICTL_DIR/.stamp"
    GOBIN="$CRICTL_DIR" CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" \
        go install -ldflags "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" \
        "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION"
    printf '%s\nbuilt-with=%s\n' "$STAMP_WANT" "$(go env GOVERSION)" >"$CRICTL_DIR/.stamp"
    log "built crictl $CRICTL_VERSION in $((SECONDS - started))s"
fi

if (($# == 0)); then
    echo "$CRICTL_BIN"
else
    exec "$CRICTL_BIN" "$@"
fi
