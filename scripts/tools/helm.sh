#!/usr/bin/env bash
# helm.sh [HELM-ARGS...]: builds Helm (helm.sh/helm/v3/cmd/helm) at a pinned v3 version with
# `go install` through the Go module proxy (no binary downloads), cached per machine, then runs
# it with HELM-ARGS. Without arguments it only builds and prints the binary's path.
#
# Output (cached, keyed by version, never inside the repository):
#   $PROGLOG_CACHE_DIR/tools/helm-<version>/helm
# A stamp file next to the binary records what was built; when it matches, this script does not
# touch the Go toolchain at all (a cached run costs only the exec).
#
# Environment:
#   PROGLOG_CACHE_DIR   cache root (default $HOME/.cache/proglog)
#   HELM_VERSION        helm.sh/helm/v3 version (default below; must be a v3 release)
#   BUILD_PARALLELISM   go build -p (default 2: the machine is shared)
set -euo pipefail

# Newest v3.x on the Go module proxy when pinned (`go list -m -versions helm.sh/helm/v3`).
HELM_VERSION="${HELM_VERSION:-v3.22.0}"
PROGLOG_CACHE_DIR="${PROGLOG_CACHE_DIR:-$HOME/.cache/proglog}"
BUILD_PARALLELISM="${BUILD_PARALLELISM:-2}"

log() { printf '[tools/helm] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ "$HELM_VERSION" =~ ^v3\.[0-9]+\.[0-9]+$ ]] || die "HELM_VERSION must be a v3 release like v3.22.0, got '$HELM_VERSION'"

HELM_DIR="$PROGLOG_CACHE_DIR/tools/helm-$HELM_VERSION"
HELM_BIN="$HELM_DIR/helm"
# The second field changes whenever the way the binary is built changes, so such a change
# rebuilds it.
STAMP_WANT="helm=$HELM_VERSION ldflags=version,k8s-capabilities"

# The stamp is written last, after the binary exists, so an interrupted build is never mistaken
# for a finished one.
is_fresh() {
    [[ -f "$HELM_DIR/.stamp" && "$(head -n 1 "$HELM_DIR/.stamp")" == "$STAMP_WANT" && -x "$HELM_BIN" ]]
}

# The -ldflags of Helm's own Makefile: the full version (the source says only "v3.<minor>") and
# the Kubernetes version that `helm template` and `helm lint` assume without --kube-version,
# derived like upstream from the k8s.io/client-go v0.<minor> that Helm is built with (a plain
# `go install` would leave the source default, v1.20, which fails charts needing newer clusters).
helm_ldflags() {
    local download helm_gomod client_go minor
    download="$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION")" ||
        die "cannot download helm.sh/helm/v3@$HELM_VERSION: $(sed -n 's/^[[:space:]]*"Error": //p' <<<"$download")"
    helm_gomod="$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p' <<<"$download")"
    [[ -n "$helm_gomod" && -f "$helm_gomod" ]] || die "no go.mod for helm.sh/helm/v3@$HELM_VERSION in: $download"
    client_go="$(sed -n 's#^[[:space:]]*k8s.io/client-go \(v0\.[0-9]*\)\..*#\1#p' "$helm_gomod" | head -n 1)"
    [[ "$client_go" =~ ^v0\.[0-9]+$ ]] || die "no k8s.io/client-go v0.x requirement in $helm_gomod"
    minor="${client_go#v0.}"
    local flags="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    local pkg
    for pkg in helm.sh/helm/v3/pkg/chartutil helm.sh/helm/v3/pkg/lint/rules; do
        flags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$minor"
    done
    printf '%s' "$flags"
}

build_helm() {
    command -v go >/dev/null 2>&1 || die "the Go toolchain is required (https://go.dev/dl/); 'go' is not on PATH"
    log "building helm $HELM_VERSION with go install (cold: 2-3 minutes on 2 cores)"
    local started=$SECONDS ldflags
    mkdir -p "$HELM_DIR"
    rm -f "$HELM_DIR/.stamp"
    ldflags="$(helm_ldflags)"
    # `go install PKG@VERSION` builds outside any module, from helm's own go.mod and go.sum (so the
    # dependency versions are the ones Helm released with).
    GOBIN="$HELM_DIR" CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" \
        go install -p "$BUILD_PARALLELISM" -ldflags "$ldflags" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" ||
        die "go install helm.sh/helm/v3/cmd/helm@$HELM_VERSION failed"
    [[ -x "$HELM_BIN" ]] || die "go install finished but $HELM_BIN is missing"
    printf '%s\nbuilt-with=%s\n' "$STAMP_WANT" "$(go env GOVERSION)" >"$HELM_DIR/.stamp"
    log "built helm $HELM_VERSION in $((SECONDS - started))s: $HELM_BIN"
}

is_fresh || build_helm

if (($# == 0)); then
    printf '%s\n' "$HELM_BIN"
    exit 0
fi
exec "$HELM_BIN" "$@"
