#!/usr/bin/env bash
# Smoke test proving the local control plane is a real one: the API server stores and serves
# objects (ConfigMap round trip) and kube-controller-manager runs its controllers (a Deployment
# gets a ReplicaSet and Pods; deleting the Deployment's owner makes the garbage collector delete
# the Deployment, its ReplicaSet and Pods; deleting the namespace empties it).
#
# Uses $KUBECONFIG if set; otherwise runs itself under with-control-plane.sh.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
if [[ -z "${KUBECONFIG:-}" ]]; then
    exec "$SCRIPT_DIR/with-control-plane.sh" "$0" "$@"
fi
# shellcheck source=versions.sh
source "$SCRIPT_DIR/versions.sh"
KUBECTL="${KUBECTL:-$(k8s_bin_dir)/kubectl}"
TIMEOUT_SECS="${PROGLOG_SMOKE_TIMEOUT:-120}"
NS="proglog-smoke-$$"

log() { printf '[smoke] %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }
k() { "$KUBECTL" -n "$NS" "$@"; }

# eventually DESCRIPTION CMD...: polls CMD until it succeeds or the timeout passes.
eventually() {
    local description="$1" deadline=$(($(date +%s) + TIMEOUT_SECS))
    shift
    until "$@" >/dev/null 2>&1; do
        (($(date +%s) < deadline)) || fail "timed out after ${TIMEOUT_SECS}s: $description"
        sleep 0.5
    done
    log "ok: $description"
}
is_empty() { [[ -z "$("$@")" ]]; }
is_nonempty() { [[ -n "$("$@")" ]]; }

"$KUBECTL" create namespace "$NS" >/dev/null
trap '"$KUBECTL" delete namespace "$NS" --wait=false >/dev/null 2>&1 || true' EXIT
log "server $("$KUBECTL" version -o json | sed -n 's/.*"gitVersion": "\(v[^"]*\)".*/\1/p' | tail -1), namespace $NS"

# 1. Store and read back.
value="written-at-$(date +%s%N)"
k apply -f - >/dev/null <<YAML
apiVersion: v1
kind: ConfigMap
metadata: {name: smoke-roundtrip}
data: {greeting: "$value"}
YAML
got="$(k get configmap smoke-roundtrip -o jsonpath='{.data.greeting}')"
[[ "$got" == "$value" ]] || fail "ConfigMap read back '$got', wrote '$value'"
log "ok: ConfigMap round trip"

# 2. Controllers: a Deployment owned by a ConfigMap.
k create configmap smoke-owner --from-literal=role=owner >/dev/null
owner_uid="$(k get configmap smoke-owner -o jsonpath='{.metadata.uid}')"
[[ -n "$owner_uid" ]] || fail "owner ConfigMap has no uid"
k apply -f - >/dev/null <<YAML
apiVersion: apps/v1
kind: Deployment
metadata:
  name: smoke-owned
  ownerReferences:
  - {apiVersion: v1, kind: ConfigMap, name: smoke-owner, uid: "$owner_uid"}
spec:
  replicas: 1
  selector: {matchLabels: {app: smoke-owned}}
  template:
    metadata: {labels: {app: smoke-owned}}
    spec:
      containers: [{name: pause, image: registry.k8s.io/pause:3.10}]
YAML
rs_of_deployment() { k get replicasets -l app=smoke-owned -o name; }
pods_of_deployment() { k get pods -l app=smoke-owned -o name; }
eventually "deployment controller created a ReplicaSet" is_nonempty rs_of_deployment
eventually "replicaset controller created a Pod (Pending: no kubelet)" is_nonempty pods_of_deployment

# 3. Garbage collection through owner references.
k delete configmap smoke-owner --wait=true >/dev/null
eventually "garbage collector deleted the owned Deployment" is_empty k get deployment smoke-owned -o name --ignore-not-found
eventually "garbage collector deleted the Deployment's ReplicaSet" is_empty rs_of_deployment
eventually "garbage collector deleted the ReplicaSet's Pods" is_empty pods_of_deployment

# 4. Namespace lifecycle (namespace controller).
trap - EXIT
"$KUBECTL" delete namespace "$NS" --wait=false >/dev/null
eventually "namespace controller finished deleting $NS" is_empty "$KUBECTL" get namespace "$NS" -o name --ignore-not-found
log "PASS"
