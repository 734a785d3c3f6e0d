#!/usr/bin/env bash
# provisioner-check.sh: checks the host-directory provisioner (e2e/src/provisioner.rs, binary
# local-path-provisioner) against a real control plane, without kubelet or containerd: binding
# and release are kube-controller-manager's work, which is what the provisioner relies on.
#
# Under scripts/control-plane/with-control-plane.sh (started here), it runs the provisioner with
# a temporary --root, creates a StorageClass (Delete, Immediate) and a 1Gi claim, waits for the
# claim to be Bound and its directory to exist with mode 0777, deletes the claim, waits for the
# volume and the directory to be gone, and stops the provisioner with SIGTERM (it must exit 0).
#
# Environment: PROVISIONER_BIN (default: built here with cargo, debug profile),
# CARGO_TARGET_DIR (default $PROGLOG_CACHE_DIR/target), CHECK_TIMEOUT seconds per wait (120).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/../.." && pwd)"
# shellcheck source=SCRIPTDIR/../control-plane/versions.sh
source "$SCRIPT_DIR/../control-plane/versions.sh"

log() { printf '[provisioner-check] %s\n' "$*" >&2; }
die() { log "FAILED: $*"; exit 1; }

# Outer run: build the binary, then re-run this script under a fresh control plane.
if [[ -z "${PROGLOG_PROVISIONER_CHECK_INNER:-}" ]]; then
    if [[ -z "${PROVISIONER_BIN:-}" ]]; then
        export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PROGLOG_CACHE_DIR/target}"
        log "building local-path-provisioner"
        (cd "$REPO_DIR" && cargo build --quiet -p proglog-e2e --bin local-path-provisioner)
        PROVISIONER_BIN="$CARGO_TARGET_DIR/debug/local-path-provisioner"
    fi
    export PROVISIONER_BIN
    export PROGLOG_PROVISIONER_CHECK_INNER=1
    exec "$SCRIPT_DIR/../control-plane/with-control-plane.sh" "$0"
fi

# Inner run: KUBECONFIG and a matching kubectl come from with-control-plane.sh.
TIMEOUT="${CHECK_TIMEOUT:-120}"
PROVISIONER_NAME=proglog.dev/local-path
NAMESPACE=provisioner-check
WORK="$(mktemp -d)"
ROOT="$WORK/volumes"
PROVISIONER_LOG="$WORK/provisioner.log"
provisioner_pid=""

# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() {
    local status=$?
    if [[ -n "$provisioner_pid" ]] && kill -0 "$provisioner_pid" 2>/dev/null; then
        kill -TERM "$provisioner_pid" 2>/dev/null || true
        wait "$provisioner_pid" 2>/dev/null || true
    fi
    if [[ -f "$PROVISIONER_LOG" ]]; then
        log "provisioner log:"
        sed 's/^/    /' "$PROVISIONER_LOG" >&2
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# wait_for DESCRIPTION CMD...: polls CMD until it succeeds, or fails after $TIMEOUT seconds.
wait_for() {
    local description="$1" deadline=$(($(date +%s) + TIMEOUT))
    shift
    until "$@" >/dev/null 2>&1; do
        kill -0 "$provisioner_pid" 2>/dev/null || die "the provisioner exited while waiting for $description"
        (($(date +%s) < deadline)) || die "timed out after ${TIMEOUT}s waiting for $description"
        sleep 0.5
    done
    log "ok: $description"
}

# A restrictive umask proves the directory's 0777 does not depend on the caller's umask.
(umask 077 && exec "$PROVISIONER_BIN" --root "$ROOT" --provisioner-name "$PROVISIONER_NAME" \
    --node-name provisioner-check-node) >"$PROVISIONER_LOG" 2>&1 &
provisioner_pid=$!
log "provisioner started (pid $provisioner_pid, root $ROOT)"

kubectl create namespace "$NAMESPACE" >/dev/null
kubectl apply -f - >/dev/null <<YAML
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: provisioner-check
provisioner: $PROVISIONER_NAME
reclaimPolicy: Delete
volumeBindingMode: Immediate
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
  namespace: $NAMESPACE
spec:
  storageClassName: provisioner-check
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
YAML
log "created StorageClass provisioner-check and claim $NAMESPACE/data (1Gi)"

claim_bound() { [[ "$(kubectl -n "$NAMESPACE" get pvc data -o jsonpath='{.status.phase}')" == Bound ]]; }
wait_for "claim Bound" claim_bound

volume="$(kubectl -n "$NAMESPACE" get pvc data -o jsonpath='{.spec.volumeName}')"
uid="$(kubectl -n "$NAMESPACE" get pvc data -o jsonpath='{.metadata.uid}')"
[[ "$volume" == "pvc-$uid" ]] || die "claim bound to $volume, expected pvc-$uid"
dir="$(kubectl get pv "$volume" -o jsonpath='{.spec.hostPath.path}')"
expected_dir="$(cd "$ROOT" && pwd -P)/${NAMESPACE}_data_$uid"
[[ "$dir" == "$expected_dir" ]] || die "volume $volume has hostPath $dir, expected $expected_dir"
[[ -d "$dir" ]] || die "directory $dir does not exist"
mode="$(stat -c %a "$dir")"
[[ "$mode" == 777 ]] || die "directory $dir has mode $mode, expected 777"
log "ok: volume $volume -> $dir (mode $mode)"
log "volume: $(kubectl get pv "$volume" -o jsonpath='capacity={.spec.capacity.storage} modes={.spec.accessModes} class={.spec.storageClassName} reclaim={.spec.persistentVolumeReclaimPolicy} node={.spec.nodeAffinity.required.nodeSelectorTerms[0].matchExpressions[0].values[0]} by={.metadata.annotations.pv\.kubernetes\.io/provisioned-by}')"
# Data written into the volume must go with it.
echo "some data" >"$dir/file"

kubectl -n "$NAMESPACE" delete pvc data --wait=true >/dev/null
log "deleted claim $NAMESPACE/data"
volume_gone() { ! kubectl get pv "$volume" >/dev/null 2>&1; }
wait_for "volume $volume deleted" volume_gone
dir_gone() { [[ ! -e "$dir" ]]; }
wait_for "directory $dir removed" dir_gone

kill -TERM "$provisioner_pid"
status=0
wait "$provisioner_pid" || status=$?
provisioner_pid=""
((status == 0)) || die "the provisioner exited with status $status on SIGTERM"
log "ok: provisioner stopped on SIGTERM (status 0)"
log "PASSED"
