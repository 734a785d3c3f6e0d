#!/usr/bin/env bash
# `make up`, the project's main job: a Kubernetes cluster running ProgLog, on a fresh machine.
# 1. a cluster: kind when a Docker engine answers and `kind` is installed (images built from the
#    Dockerfiles and loaded), otherwise the local single-node cluster of scripts/local-cluster/
#    (host processes, images built without Docker);
# 2. the operator, installed with the Helm chart (scripts/install-operator.sh);
# 3. a CA Secret from the dev certificates (.proglog/certs, written by `proglog certs`) and the
#    3-replica ProgLogCluster of examples/local-cluster.yaml, waited to Available;
# 4. how to produce and consume from the host, ending with the `export KUBECONFIG=` line.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PROGLOG_CACHE_DIR="${PROGLOG_CACHE_DIR:-$HOME/.cache/proglog}"
BIN_DIR="${CARGO_TARGET_DIR:-$PROGLOG_CACHE_DIR/target}/release"
NAMESPACE="${PROGLOG_NAMESPACE:-default}"
CERTS="$ROOT/.proglog/certs"
TIMEOUT_SECS="${PROGLOG_UP_TIMEOUT:-600}"
log() { printf '[up] %s\n' "$*" >&2; }
started=$(date +%s)

if command -v docker >/dev/null && docker info >/dev/null 2>&1 && command -v kind >/dev/null; then
    log "a Docker engine answers: using kind"
    make -s release >&2
    docker build -q -f node/Dockerfile -t proglog-node:dev . >&2
    docker build -q -f operator/Dockerfile -t proglog-operator:dev . >&2
    kind get clusters 2>/dev/null | grep -qx proglog || kind create cluster --name proglog >&2
    kind load docker-image proglog-node:dev proglog-operator:dev --name proglog >&2
    KUBECONFIG="$PROGLOG_CACHE_DIR/kind-proglog.kubeconfig"
    kind get kubeconfig --name proglog >"$KUBECONFIG"
    echo kind >"$PROGLOG_CACHE_DIR/up-mode"
else
    log "no Docker engine: using the local cluster (host processes)"
    make -s local-cluster >&2
    KUBECONFIG="$(scripts/local-cluster/up.sh)"
    echo local >"$PROGLOG_CACHE_DIR/up-mode"
    # shellcheck source=/dev/null # written by local-cluster/up.sh
    source "$(dirname "$KUBECONFIG")/../env"
fi
export KUBECONFIG
k8s_bin="$(source scripts/control-plane/versions.sh && k8s_bin_dir)"
kubectl() { "$k8s_bin/kubectl" "$@"; }

scripts/install-operator.sh

[[ -f "$CERTS/ca.pem" ]] || "$BIN_DIR/proglog" certs --out "$CERTS" >/dev/null
kubectl -n "$NAMESPACE" create secret tls proglog-dev-ca --cert="$CERTS/ca.pem" --key="$CERTS/ca-key.pem" \
    --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n "$NAMESPACE" apply -f examples/local-cluster.yaml >/dev/null
log "waiting for ProgLogCluster/logs: Available, phase Running, 3 Ready voters"
# Available alone turns true as soon as one voter leads; the cluster is up when every replica is
# a Ready voter and the operator has nothing left to do (phase Running).
cluster_up() {
    [[ "$(kubectl -n "$NAMESPACE" get plc logs -o jsonpath='{.status.phase}/{.status.readyReplicas}/{.status.conditions[?(@.type=="Available")].status}' 2>/dev/null)" == Running/3/True ]] &&
        [[ "$(kubectl -n "$NAMESPACE" get plc logs -o jsonpath='{range .status.voters[*]}{.nodeId}{"\n"}{end}' | grep -c .)" == 3 ]]
}
deadline=$(($(date +%s) + TIMEOUT_SECS))
until cluster_up; do
    sleep 1
    if (($(date +%s) > deadline)); then
        kubectl -n "$NAMESPACE" get plc,pods -o wide >&2 || true
        log "error: not Available after ${TIMEOUT_SECS}s"
        exit 1
    fi
done
kubectl -n "$NAMESPACE" get plc logs >&2
log "up in $(($(date +%s) - started))s"

# A context in the CLI's config file (like kind's kubeconfig entry), so `proglog` needs no flags.
"$BIN_DIR/proglog" config set-context proglog-local --use --addr localhost:8400 \
    --ca "$CERTS/ca.pem" --cert "$CERTS/root.pem" --key "$CERTS/root-key.pem" >&2
PROGLOG="$(command -v proglog || echo "$BIN_DIR/proglog")"

cat <<MSG

ProgLog is running: ProgLogCluster 'logs' in namespace '$NAMESPACE' (3 nodes, Raft, mTLS).
Reach it from this machine through its client Service (any node accepts any request); the
CLI's current context 'proglog-local' ($("$BIN_DIR/proglog" config path)) holds the address and
the dev certificates ('make install' puts proglog on PATH):

  kubectl -n $NAMESPACE port-forward svc/logs 8400:8400 &
  $PROGLOG produce "hello"
  $PROGLOG consume --from 0
  $PROGLOG -o json servers
  kubectl -n $NAMESPACE get plc,pods

'make down' removes it all.
export KUBECONFIG=$KUBECONFIG
MSG
