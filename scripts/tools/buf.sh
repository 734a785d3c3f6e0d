#!/usr/bin/env bash
# buf.sh [BUF-ARGS...]: builds buf (github.com/bufbuild/buf/cmd/buf) and the Go protobuf plugins
# that `buf generate` runs for clients/go (protoc-gen-go from google.golang.org/protobuf,
# protoc-gen-go-grpc from google.golang.org/grpc/cmd/protoc-gen-go-grpc) at pinned versions with
# `go install` through the Go module proxy (no binary downloads), cached per machine, then runs
# buf with BUF-ARGS and the plugins' directory first on PATH. Without arguments it only builds
# and prints buf's path.
#
# Output (cached, keyed by versions, never inside the repository):
#   $PROGLOG_CACHE_DIR/tools/buf-<buf>-go-<protobuf>-grpc-<grpc>/{buf,protoc-gen-go,protoc-gen-go-grpc}
# A stamp file next to the binaries records what was built; when it matches, this script does not
# touch the Go toolchain at all (a cached run costs only the exec).
#
# Environment:
#   PROGLOG_CACHE_DIR        cache root (default $HOME/.cache/proglog)
#   BUF_VERSION              github.com/bufbuild/buf version
#   PROTOC_GEN_GO_VERSION    google.golang.org/protobuf version (protoc-gen-go)
#   PROTOC_GEN_GO_GRPC_VERSION google.golang.org/grpc/cmd/protoc-gen-go-grpc version
#   BUILD_PARALLELISM        go build -p (default 2: the machine is shared)
set -euo pipefail

# Newest releases on the Go module proxy when pinned (`go list -m -versions MODULE`). The code
# committed under clients/go/gen was generated with exactly these plugin versions (its header
# says so), so changing them means regenerating it (clients/go/generate.sh).
BUF_VERSION="${BUF_VERSION:-v1.75.0}"
PROTOC_GEN_GO_VERSION="${PROTOC_GEN_GO_VERSION:-v1.36.12}"
PROTOC_GEN_GO_GRPC_VERSION="${PROTOC_GEN_GO_GRPC_VERSION:-v1.6.2}"
PROGLOG_CACHE_DIR="${PROGLOG_CACHE_DIR:-$HOME/.cache/proglog}"
BUILD_PARALLELISM="${BUILD_PARALLELISM:-2}"

log() { printf '[tools/buf] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for v in "$BUF_VERSION" "$PROTOC_GEN_GO_VERSION" "$PROTOC_GEN_GO_GRPC_VERSION"; do
    [[ "$v" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "versions must be releases like v1.2.3, got '$v'"
done

TOOLS_DIR="$PROGLOG_CACHE_DIR/tools/buf-$BUF_VERSION-go-$PROTOC_GEN_GO_VERSION-grpc-$PROTOC_GEN_GO_GRPC_VERSION"
BUF_BIN="$TOOLS_DIR/buf"
STAMP_WANT="buf=$BUF_VERSION protoc-gen-go=$PROTOC_GEN_GO_VERSION protoc-gen-go-grpc=$PROTOC_GEN_GO_GRPC_VERSION"

# The stamp is written last, after every binary exists, so an interrupted build is never
# mistaken for a finished one.
is_fresh() {
    [[ -f "$TOOLS_DIR/.stamp" && "$(head -n 1 "$TOOLS_DIR/.stamp")" == "$STAMP_WANT" ]] || return 1
    local bin
    for bin in buf protoc-gen-go protoc-gen-go-grpc; do [[ -x "$TOOLS_DIR/$bin" ]] || return 1; done
}

go_install() { # package@version
    # `go install PKG@VERSION` builds outside any module, from the tool's own go.mod and go.sum
    # (so the dependency versions are the ones it was released with).
    GOBIN="$TOOLS_DIR" CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" \
        go install -p "$BUILD_PARALLELISM" -ldflags "-s -w" "$1" || die "go install $1 failed"
}

build_tools() {
    command -v go >/dev/null 2>&1 || die "the Go toolchain is required (https://go.dev/dl/); 'go' is not on PATH"
    log "building buf $BUF_VERSION, protoc-gen-go $PROTOC_GEN_GO_VERSION and protoc-gen-go-grpc $PROTOC_GEN_GO_GRPC_VERSION with go install (cold: a few minutes on 2 cores)"
    local started=$SECONDS
    mkdir -p "$TOOLS_DIR"
    rm -f "$TOOLS_DIR/.stamp"
    go_install "github.com/bufbuild/buf/cmd/buf@$BUF_VERSION"
    go_install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
    go_install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
    printf '%s\nbuilt-with=%s\n' "$STAMP_WANT" "$(go env GOVERSION)" >"$TOOLS_DIR/.stamp"
    log "built in $((SECONDS - started))s: $TOOLS_DIR"
}

is_fresh || build_tools

if (($# == 0)); then
    printf '%s\n' "$BUF_BIN"
    exit 0
fi
# buf generate finds local plugins (buf.gen.yaml `local:`) on PATH.
PATH="$TOOLS_DIR:$PATH" exec "$BUF_BIN" "$@"
