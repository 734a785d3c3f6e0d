#!/usr/bin/env bash
# peers.sh [etcd|nats|kafka|all]: builds the peer systems `make bench-compare` measures ProgLog against,
# from source with the Go toolchain through the Go module proxy (no binary downloads), at pinned
# versions, cached per machine; prints "NAME PATH MODULE@VERSION" for each binary. A cached build is only checked
# (well under a second); it is rebuilt only when missing or its version stamp differs.
#
#   etcd           go.etcd.io/etcd/server/v3           -> peers/etcd-<ETCD_SERVER_VERSION>/etcd
#   benchmark      go.etcd.io/etcd/v3 tools/benchmark  -> peers/etcd-<ETCD_SERVER_VERSION>/benchmark
#   nats-server    github.com/nats-io/nats-server/v2   -> peers/nats-server-<NATS_SERVER_VERSION>/nats-server
#   nats           github.com/nats-io/natscli (nats)   -> peers/natscli-<NATSCLI_VERSION>/nats
#   kafka          org.apache.kafka:kafka_2.13 + kafka-tools jars and their runtime dependencies
#                  from Maven Central (Maven, a throwaway pom) -> peers/kafka-<KAFKA_VERSION>/libs
#                  (optional: only `peers.sh kafka` fetches it; "all" is etcd and nats)
#
# Both etcd binaries come from one throwaway module (like scripts/control-plane/build.sh): the
# etcd modules' own go.mod files replace their siblings with ../ paths, which `go install PKG@V`
# refuses. Requiring the server at ETCD_SERVER_VERSION and the root module (which holds
# tools/benchmark) at ETCD_TOOLS_VERSION makes Go's minimal version selection build the tool
# against the server's client libraries (the root module is published less often: the proxy
# serves fewer go.etcd.io/etcd/v3 versions than go.etcd.io/etcd/server/v3 ones).
#
# The NATS binaries have no replace directives, so `go install PKG@VERSION` builds them from their
# own go.mod and go.sum.
#
# Go's module and build caches live under $PROGLOG_CACHE_DIR/peers/go so that these builds neither
# fill nor depend on the user's caches.
#
# Environment:
#   PROGLOG_CACHE_DIR     cache root (default $HOME/.cache/proglog)
#   ETCD_SERVER_VERSION   go.etcd.io/etcd/server/v3 version
#   ETCD_TOOLS_VERSION    go.etcd.io/etcd/v3 version (tools/benchmark)
#   NATS_SERVER_VERSION   github.com/nats-io/nats-server/v2 version
#   NATSCLI_VERSION       github.com/nats-io/natscli version
#   KAFKA_VERSION         org.apache.kafka version (Kafka 4 brokers need Java 17+)
#   BUILD_PARALLELISM     go build -p (default 2: the machine is shared)
#   BUILD_NICE            nice level of the builds (default 19: the machine is shared)
set -euo pipefail

# Pinned from `go list -m -versions <module>` (newest releases on the proxy when pinned; etcd
# 3.6 is the release line the control plane also runs).
ETCD_SERVER_VERSION="${ETCD_SERVER_VERSION:-v3.6.16}"
ETCD_TOOLS_VERSION="${ETCD_TOOLS_VERSION:-v3.6.8}"
NATS_SERVER_VERSION="${NATS_SERVER_VERSION:-v2.15.3}"
NATSCLI_VERSION="${NATSCLI_VERSION:-v0.5.1}"
# Newest on Maven Central when pinned (org/apache/kafka/kafka_2.13/maven-metadata.xml).
KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
PROGLOG_CACHE_DIR="${PROGLOG_CACHE_DIR:-$HOME/.cache/proglog}"
BUILD_PARALLELISM="${BUILD_PARALLELISM:-2}"
BUILD_NICE="${BUILD_NICE:-19}"
PEERS_DIR="$PROGLOG_CACHE_DIR/peers"

log() { printf '[bench/peers] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

for v in ETCD_SERVER_VERSION ETCD_TOOLS_VERSION NATS_SERVER_VERSION NATSCLI_VERSION; do
    [[ "${!v}" =~ ^v[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "$v must be a release like v1.2.3, got '${!v}'"
done

ETCD_DIR="$PEERS_DIR/etcd-$ETCD_SERVER_VERSION"
NATS_SERVER_DIR="$PEERS_DIR/nats-server-$NATS_SERVER_VERSION"
NATSCLI_DIR="$PEERS_DIR/natscli-$NATSCLI_VERSION"
KAFKA_DIR="$PEERS_DIR/kafka-$KAFKA_VERSION"

# is_fresh DIR WANTED BINARIES...: the stamp (written last, after every binary exists, so an
# interrupted build is never taken for a finished one) matches and every binary is there.
is_fresh() {
    local dir="$1" want="$2" bin
    shift 2
    [[ -f "$dir/.stamp" && "$(head -n 1 "$dir/.stamp")" == "$want" ]] || return 1
    for bin in "$@"; do [[ -x "$dir/$bin" ]] || return 1; done
}

stamp() { printf '%s\nbuilt-with=%s\n' "$2" "$(go env GOVERSION)" >"$1/.stamp"; }

go_env() {
    command -v go >/dev/null 2>&1 || die "the Go toolchain is required; 'go' is not on PATH"
    export GOMODCACHE="$PEERS_DIR/go/mod" GOCACHE="$PEERS_DIR/go/build"
    # A module asking for a newer Go than the local one fails loudly instead of fetching a toolchain.
    export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
    mkdir -p "$GOMODCACHE" "$GOCACHE"
}

build_etcd() {
    local want="etcd-server=$ETCD_SERVER_VERSION etcd-tools=$ETCD_TOOLS_VERSION bins=etcd,benchmark"
    if is_fresh "$ETCD_DIR" "$want" etcd benchmark; then return; fi
    go_env
    log "building etcd $ETCD_SERVER_VERSION and its benchmark tool (etcd/v3 $ETCD_TOOLS_VERSION); cold: several minutes"
    local started=$SECONDS src="$ETCD_DIR/src"
    mkdir -p "$src"
    rm -f "$ETCD_DIR/.stamp"
    (
        cd "$src"
        printf '// Generated by scripts/bench/peers.sh: a throwaway module to build etcd.\nmodule proglog.dev/bench-peers-etcd\n\ngo 1.24\n' >go.mod
        rm -f go.sum
        go get "go.etcd.io/etcd/server/v3@$ETCD_SERVER_VERSION" "go.etcd.io/etcd/v3@$ETCD_TOOLS_VERSION"
        # The server's main package is its module root.
        nice -n "$BUILD_NICE" go build -p "$BUILD_PARALLELISM" -ldflags "-s -w" -o "$ETCD_DIR/etcd" go.etcd.io/etcd/server/v3
        nice -n "$BUILD_NICE" go build -p "$BUILD_PARALLELISM" -ldflags "-s -w" -o "$ETCD_DIR/benchmark" go.etcd.io/etcd/v3/tools/benchmark
    ) || die "building etcd failed"
    stamp "$ETCD_DIR" "$want"
    log "built etcd in $((SECONDS - started))s: $ETCD_DIR"
}

# go_install_into DIR PACKAGE@VERSION BINARY WANT
go_install_into() {
    local dir="$1" pkg="$2" bin="$3" want="$4"
    if is_fresh "$dir" "$want" "$bin"; then return; fi
    go_env
    log "building $pkg (cold: a few minutes)"
    local started=$SECONDS
    mkdir -p "$dir"
    rm -f "$dir/.stamp"
    GOBIN="$dir" nice -n "$BUILD_NICE" go install -p "$BUILD_PARALLELISM" -ldflags "-s -w" "$pkg" ||
        die "go install $pkg failed"
    [[ -x "$dir/$bin" ]] || die "go install $pkg finished but $dir/$bin is missing"
    stamp "$dir" "$want"
    log "built $bin in $((SECONDS - started))s: $dir/$bin"
}

build_nats() {
    go_install_into "$NATS_SERVER_DIR" "github.com/nats-io/nats-server/v2@$NATS_SERVER_VERSION" nats-server \
        "nats-server=$NATS_SERVER_VERSION"
    go_install_into "$NATSCLI_DIR" "github.com/nats-io/natscli/nats@$NATSCLI_VERSION" nats \
        "natscli=$NATSCLI_VERSION"
}

# Kafka is Java: its jars and their runtime dependencies, resolved by Maven from a throwaway pom
# (Maven's own repository cache under peers/m2). The brokers, kafka-topics and the perf tools
# run from that class path by main class.
build_kafka() {
    local want="kafka=$KAFKA_VERSION"
    [[ "$KAFKA_VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || die "KAFKA_VERSION must be a release like 4.4.0, got '$KAFKA_VERSION'"
    if [[ -f "$KAFKA_DIR/.stamp" && "$(head -n 1 "$KAFKA_DIR/.stamp")" == "$want" && -f "$KAFKA_DIR/libs/kafka_2.13-$KAFKA_VERSION.jar" ]]; then
        return
    fi
    command -v mvn >/dev/null 2>&1 || die "Maven ('mvn') is required to fetch Kafka"
    command -v java >/dev/null 2>&1 || die "a Java 17+ runtime ('java') is required to run Kafka"
    log "fetching Kafka $KAFKA_VERSION from Maven Central"
    local started=$SECONDS
    rm -rf "$KAFKA_DIR/libs" "$KAFKA_DIR/.stamp"
    mkdir -p "$KAFKA_DIR/src"
    cat >"$KAFKA_DIR/src/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by scripts/bench/peers.sh: resolves Kafka's jars for the benchmark. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.proglog</groupId>
  <artifactId>bench-peers-kafka</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
  </dependencies>
</project>
EOF
    nice -n "$BUILD_NICE" mvn -q -B -f "$KAFKA_DIR/src/pom.xml" -Dmaven.repo.local="$PEERS_DIR/m2" \
        -Dstyle.color=never dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$KAFKA_DIR/libs" >&2 ||
        die "resolving Kafka $KAFKA_VERSION with Maven failed"
    [[ -f "$KAFKA_DIR/libs/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "Maven finished but kafka_2.13-$KAFKA_VERSION.jar is missing"
    printf '%s\n' "$want" >"$KAFKA_DIR/.stamp"
    log "fetched Kafka $KAFKA_VERSION in $((SECONDS - started))s: $KAFKA_DIR/libs"
}

case "${1:-all}" in
    etcd) build_etcd ;;
    nats) build_nats ;;
    kafka) build_kafka ;;
    all) build_etcd; build_nats ;;
    *) die "usage: peers.sh [etcd|nats|kafka|all]" ;;
esac

case "${1:-all}" in etcd | all)
    printf 'etcd %s go.etcd.io/etcd/server/v3@%s\nbenchmark %s go.etcd.io/etcd/v3/tools/benchmark@%s\n' \
        "$ETCD_DIR/etcd" "$ETCD_SERVER_VERSION" "$ETCD_DIR/benchmark" "$ETCD_TOOLS_VERSION" ;;
esac
case "${1:-all}" in nats | all)
    printf 'nats-server %s github.com/nats-io/nats-server/v2@%s\nnats %s github.com/nats-io/natscli@%s\n' \
        "$NATS_SERVER_DIR/nats-server" "$NATS_SERVER_VERSION" "$NATSCLI_DIR/nats" "$NATSCLI_VERSION" ;;
esac
case "${1:-all}" in kafka)
    printf 'kafka %s org.apache.kafka:kafka_2.13@%s\n' "$KAFKA_DIR/libs" "$KAFKA_VERSION" ;;
esac
