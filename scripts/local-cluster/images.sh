#!/usr/bin/env bash
# images.sh [IMAGE...]: builds the container images the local cluster runs, as OCI image layout
# archives for `ctr -n k8s.io images import` (this machine has no Docker engine and no registry,
# so images are assembled from host files by oci-image.py instead of `docker build`):
#
#   docker.io/library/proglog-pause:3.10          pod sandbox, from pause.c (static)
#   docker.io/library/proglog-node:dev            what node/Dockerfile builds
#   docker.io/library/proglog-operator:dev        what operator/Dockerfile builds
#   docker.io/library/proglog-coredns:<version>   cluster DNS (manifests/coredns.yaml)
#
# IMAGE selects some of them, by full name, by repository (proglog-node) or by short name
# (pause, node, operator, coredns); the default is all. Prints "NAME ARCHIVE" per image on
# stdout (logs go to stderr).
#
# Output (cached per machine, never inside the repository):
#   $PROGLOG_CACHE_DIR/local-cluster/images/<repository>.tar   e.g. proglog-node.tar
# with a <archive>.stamp next to each: the hash of everything the archive is made from (file
# contents, image config, this recipe). When it matches, the archive is left alone, so a cached
# run costs the hashing of the inputs only.
#
# The Rust binaries are NOT built here: they come from `make release`
# in ${CARGO_TARGET_DIR:-$PROGLOG_CACHE_DIR/target}/release.
# CoreDNS is built with the Go toolchain through the Go module proxy (cached like
# scripts/tools/helm.sh, keyed by version): $PROGLOG_CACHE_DIR/tools/coredns-<version>/coredns.
#
# Environment:
#   PROGLOG_CACHE_DIR   cache root (default $HOME/.cache/proglog)
#   CARGO_TARGET_DIR    cargo's target dir (default $PROGLOG_CACHE_DIR/target)
#   COREDNS_VERSION     github.com/coredns/coredns version (default below)
#   BUILD_PARALLELISM   go build -p (default 2: the machine is shared)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/../control-plane/versions.sh
source "$SCRIPT_DIR/../control-plane/versions.sh"

# Newest v1.13.x on the Go module proxy when pinned. (`go list -m -versions` there lists only
# v1.14.3 and later, but v1.13.2 resolves and builds; v1.13.x is the line of Kubernetes 1.34's
# own CoreDNS, v1.12.x.) manifests/coredns.yaml names this image: change both together.
COREDNS_VERSION="${COREDNS_VERSION:-v1.13.2}"
BUILD_PARALLELISM="${BUILD_PARALLELISM:-2}"
RELEASE_DIR="${CARGO_TARGET_DIR:-$PROGLOG_CACHE_DIR/target}/release"
IMAGES_DIR="$PROGLOG_CACHE_DIR/local-cluster/images"
# Intermediate files: the pause binary and the distroless-like /etc files.
BUILD_DIR="$PROGLOG_CACHE_DIR/local-cluster/build"
OCI_IMAGE="$SCRIPT_DIR/oci-image.py"
COREDNS_MANIFEST="$SCRIPT_DIR/manifests/coredns.yaml"

PAUSE_IMAGE=docker.io/library/proglog-pause:3.10
NODE_IMAGE=docker.io/library/proglog-node:dev
OPERATOR_IMAGE=docker.io/library/proglog-operator:dev
COREDNS_IMAGE="docker.io/library/proglog-coredns:$COREDNS_VERSION"
ALL_KEYS=(pause node operator coredns)

# Bump when the recipe changes in a way the hashed inputs do not show, to rebuild every archive.
RECIPE=1

log() { printf '[local-cluster/images] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

[[ "$COREDNS_VERSION" =~ ^v1\.[0-9]+\.[0-9]+$ ]] || die "COREDNS_VERSION must be a release like v1.13.2, got '$COREDNS_VERSION'"
command -v python3 >/dev/null 2>&1 || die "python3 is required (for oci-image.py)"

image_name() {
    case "$1" in
        pause) printf '%s' "$PAUSE_IMAGE" ;;
        node) printf '%s' "$NODE_IMAGE" ;;
        operator) printf '%s' "$OPERATOR_IMAGE" ;;
        coredns) printf '%s' "$COREDNS_IMAGE" ;;
    esac
}

# docker.io/library/proglog-node:dev -> proglog-node
repository() { local r="${1##*/}"; printf '%s' "${r%:*}"; }

# Maps a command-line IMAGE to its short name.
image_key() {
    local want="$1" key name
    for key in "${ALL_KEYS[@]}"; do
        name="$(image_name "$key")"
        if [[ "$want" == "$key" || "$want" == "$name" || "$want" == "$(repository "$name")" ]]; then
            printf '%s' "$key"
            return 0
        fi
    done
    return 1
}

# The hash of an image's inputs: oci-image.py's arguments, the content of every --file source,
# oci-image.py itself and RECIPE. Arguments must use the --file=SPEC form to be recognised.
inputs_hash() {
    local arg
    {
        printf 'recipe=%s\n' "$RECIPE"
        sha256sum "$OCI_IMAGE" | cut -d ' ' -f 1
        printf '%s\n' "$@"
        for arg in "$@"; do
            if [[ "$arg" == --file=* ]]; then
                arg="${arg#--file=}"
                sha256sum "${arg%%:*}" | cut -d ' ' -f 1
            fi
        done
    } | sha256sum | cut -d ' ' -f 1
}

# make_image KEY OCI-IMAGE-ARGS...: writes the archive of image KEY unless its stamp matches.
make_image() {
    local key="$1" name archive stamp want
    shift
    name="$(image_name "$key")"
    archive="$IMAGES_DIR/$(repository "$name").tar"
    stamp="$archive.stamp"
    want="$(inputs_hash --name="$name" "$@")"
    if [[ -f "$archive" && -f "$stamp" && "$(head -n 1 "$stamp")" == "$want" ]]; then
        log "$name: up to date ($archive)"
    else
        mkdir -p "$IMAGES_DIR"
        # The stamp goes first and is rewritten last, so an interrupted build is never mistaken
        # for a finished one.
        rm -f "$stamp"
        local line digest size
        line="$(python3 "$OCI_IMAGE" --name="$name" --output="$archive" "$@")" ||
            die "oci-image.py failed for $name"
        read -r _ digest size <<<"$line"
        printf '%s\nmanifest=%s bytes=%s\n' "$want" "$digest" "$size" >"$stamp"
        log "$name: wrote $archive (manifest $digest, $size bytes)"
    fi
    printf '%s %s\n' "$name" "$archive"
}

# --- pause -------------------------------------------------------------------------------------

# gcc is deterministic for the same source and flags (and -s drops the symbol table), so a
# rebuild from an unchanged pause.c gives the same binary and the archive stays unchanged.
PAUSE_CFLAGS=(-static -O2 -s -Wall -Wextra -Werror)

build_pause() {
    command -v gcc >/dev/null 2>&1 || die "gcc is required to build pause.c"
    local want
    want="$(printf '%s\n' "$(sha256sum "$SCRIPT_DIR/pause.c")" "${PAUSE_CFLAGS[*]}" "$(gcc --version | head -n 1)" | sha256sum)"
    if [[ -x "$BUILD_DIR/pause" && -f "$BUILD_DIR/pause.stamp" && "$(cat "$BUILD_DIR/pause.stamp")" == "$want" ]]; then
        return 0
    fi
    mkdir -p "$BUILD_DIR"
    rm -f "$BUILD_DIR/pause.stamp"
    gcc "${PAUSE_CFLAGS[@]}" -o "$BUILD_DIR/pause" "$SCRIPT_DIR/pause.c" || die "gcc failed on pause.c"
    printf '%s\n' "$want" >"$BUILD_DIR/pause.stamp"
    log "built $BUILD_DIR/pause"
}

image_pause() {
    build_pause
    # 65535: upstream's pause image runs as this user too.
    make_image pause --file="$BUILD_DIR/pause:/pause:0755" --user=65535 --entrypoint='["/pause"]'
}

# --- the Rust images on a distroless-like base -------------------------------------------------

# What gcr.io/distroless/cc-debian12:nonroot gives a glibc program and that the binaries can
# notice: users root and nonroot (65532) with a home, a world-writable /tmp, name service config
# (without it, glibc's lookups differ), the CA bundle, and the image config's Env and WorkingDir.
write_base_files() {
    mkdir -p "$BUILD_DIR/etc"
    cat >"$BUILD_DIR/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
    cat >"$BUILD_DIR/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
tty:x:5:
staff:x:50:
nonroot:x:65532:
EOF
    # "files dns" only: glibc has both built in, so no libnss_*.so needs to be in the image.
    cat >"$BUILD_DIR/etc/nsswitch.conf" <<'EOF'
passwd:         files
group:          files
shadow:         files
gshadow:        files

hosts:          files dns
networks:       files

protocols:      files
services:       files
ethers:         files
rpc:            files
EOF
}

BASE_ARGS=(
    --file="$BUILD_DIR/etc/passwd:/etc/passwd:0644"
    --file="$BUILD_DIR/etc/group:/etc/group:0644"
    --file="$BUILD_DIR/etc/nsswitch.conf:/etc/nsswitch.conf:0644"
    --file=/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:0644
    --dir=/tmp:1777
    --dir=/root:0700
    --dir=/home/nonroot:0700:65532:65532
    --env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    --env=SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
    --workdir=/home/nonroot
    --user=65532:65532
)

# Prints the shared libraries the binaries load, and the dynamic loader, one path per line, at
# the paths the host's loader finds them; the image gets the real files (symlinks followed) at
# exactly those paths, so the binaries' PT_INTERP (/lib64/ld-linux-x86-64.so.2) and the loader's
# default search path (/lib/x86_64-linux-gnu) resolve in the image as on the host.
shared_libs() {
    local bin out
    for bin in "$@"; do
        out="$(ldd "$bin" 2>&1)" || die "ldd $bin failed: $out"
        if grep -q 'not found' <<<"$out"; then
            die "$bin needs libraries this machine lacks:"$'\n'"$out"
        fi
        # "libc.so.6 => /lib/.../libc.so.6 (0x...)" and "/lib64/ld-linux-x86-64.so.2 (0x...)";
        # linux-vdso.so.1 is the kernel's, not a file.
        awk '$2 == "=>" && $3 ~ /^\// { print $3; next } $1 ~ /^\// { print $1 }' <<<"$out"
    done | sort -u
}

# rust_image KEY BINARY...: an image with the release BINARYs in /usr/local/bin, the first one as
# the entrypoint, plus their libraries and the base files; extra oci-image.py args follow "--".
rust_image() {
    local key="$1" bin lib
    shift
    local bins=() args=()
    while (($#)) && [[ "$1" != -- ]]; do
        bins+=("$RELEASE_DIR/$1")
        shift
    done
    (($#)) && shift
    for bin in "${bins[@]}"; do
        [[ -x "$bin" ]] || die "missing $bin: build the release binaries first with 'make release' (cargo build --release -p proglog-node -p proglog-cli -p proglog-operator --bins); looked in $RELEASE_DIR (CARGO_TARGET_DIR)"
        args+=(--file="$bin:/usr/local/bin/${bin##*/}:0755")
    done
    # An assignment, not a process substitution, so that a failing ldd stops the script.
    local libs
    libs="$(shared_libs "${bins[@]}")"
    while IFS= read -r lib; do
        args+=(--file="$lib:$lib")
    done <<<"$libs"
    write_base_files
    make_image "$key" "${args[@]}" "${BASE_ARGS[@]}" \
        --entrypoint="[\"/usr/local/bin/${bins[0]##*/}\"]" "$@"
}

# node/Dockerfile: proglog-node (entrypoint) and the proglog CLI; gRPC 8400, metrics/health 9400.
image_node() { rust_image node proglog-node proglog -- --expose=8400 --expose=9400; }
# operator/Dockerfile: proglog-operator only.
image_operator() { rust_image operator proglog-operator; }

# --- CoreDNS ------------------------------------------------------------------------------------

COREDNS_DIR="$PROGLOG_CACHE_DIR/tools/coredns-$COREDNS_VERSION"
COREDNS_BIN="$COREDNS_DIR/coredns"
# The second field changes whenever the way the binary is built changes, so such a change
# rebuilds it.
COREDNS_STAMP_WANT="coredns=$COREDNS_VERSION flags=cgo0,trimpath,s-w,gitcommit"

build_coredns() {
    if [[ -f "$COREDNS_DIR/.stamp" && "$(head -n 1 "$COREDNS_DIR/.stamp")" == "$COREDNS_STAMP_WANT" && -x "$COREDNS_BIN" ]]; then
        return 0
    fi
    command -v go >/dev/null 2>&1 || die "the Go toolchain is required (https://go.dev/dl/); 'go' is not on PATH"
    log "building CoreDNS $COREDNS_VERSION with go install (cold: several minutes on 2 cores)"
    local started=$SECONDS
    mkdir -p "$COREDNS_DIR"
    rm -f "$COREDNS_DIR/.stamp"
    # `go install PKG@VERSION` builds outside any module (nothing is written to the repository),
    # from CoreDNS's own go.mod and go.sum; its main package is the module root, with the
    # generated plugin list (core/plugin/zplugin.go) of the release. Static (CGO_ENABLED=0), so
    # the image needs no libc.
    GOBIN="$COREDNS_DIR" CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false" \
        go install -p "$BUILD_PARALLELISM" \
        -ldflags "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" \
        "github.com/coredns/coredns@$COREDNS_VERSION" ||
        die "go install github.com/coredns/coredns@$COREDNS_VERSION failed"
    [[ -x "$COREDNS_BIN" ]] || die "go install finished but $COREDNS_BIN is missing"
    printf '%s\nbuilt-with=%s\n' "$COREDNS_STAMP_WANT" "$(go env GOVERSION)" >"$COREDNS_DIR/.stamp"
    log "built CoreDNS $COREDNS_VERSION in $((SECONDS - started))s: $COREDNS_BIN"
}

image_coredns() {
    build_coredns
    # The manifest names the image literally (no substitution step): catch a version bump here
    # that forgot it, or a COREDNS_VERSION override it does not follow.
    if [[ -f "$COREDNS_MANIFEST" ]] && ! grep -qF "image: ${COREDNS_IMAGE#docker.io/library/}" "$COREDNS_MANIFEST"; then
        log "warning: $COREDNS_MANIFEST does not use ${COREDNS_IMAGE#docker.io/library/}; its pod will not find this image"
    fi
    # nonroot like upstream's image (distroless static:nonroot), but without its file capability
    # to bind port 53: the manifest's Corefile listens on 1053 (the Service maps 53 to it).
    make_image coredns --file="$COREDNS_BIN:/coredns:0755" --user=65532:65532 \
        --entrypoint='["/coredns"]' --expose=1053/udp --expose=1053/tcp
}

# --- main ---------------------------------------------------------------------------------------

keys=()
if (($# == 0)); then
    keys=("${ALL_KEYS[@]}")
else
    for arg in "$@"; do
        case "$arg" in
            -h | --help)
                sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"
                exit 0
                ;;
        esac
        key="$(image_key "$arg")" || die "unknown image '$arg'; known: ${ALL_KEYS[*]} (or their full names)"
        keys+=("$key")
    done
fi

for key in "${keys[@]}"; do
    "image_$key"
done
