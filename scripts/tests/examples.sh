#!/usr/bin/env bash
# Every manifest under examples/ is accepted by a real kube-apiserver with the committed CRD
# installed (server-side dry run: the CRD's schema and CEL rules apply), so the examples the
# README and docs/GKE.md point to never drift from the API. Needs the local control plane
# (`make control-plane`).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
if [[ -z "${KUBECONFIG:-}" ]]; then
    exec "$ROOT/scripts/control-plane/with-control-plane.sh" "$0" "$@"
fi
# shellcheck source=../control-plane/versions.sh
source "$ROOT/scripts/control-plane/versions.sh"
kubectl() { "$(k8s_bin_dir)/kubectl" "$@"; }

kubectl apply --server-side -f "$ROOT/crds/proglogcluster.yaml" -f "$ROOT/crds/progloguser.yaml" >/dev/null
kubectl wait --for=condition=Established --timeout=60s \
    crd/proglogclusters.proglog.dev crd/proglogusers.proglog.dev >/dev/null
checked=0
for manifest in "$ROOT"/examples/*.yaml; do
    kubectl apply --dry-run=server -f "$manifest" >/dev/null
    checked=$((checked + 1))
done
echo "examples: $checked manifests accepted by the API server (server-side dry run)"
