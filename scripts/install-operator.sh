#!/usr/bin/env bash
# install-operator.sh: installs (or upgrades) the operator into $KUBECONFIG's cluster with the
# Helm chart, from the local image `proglog-operator:dev` (imported by the local cluster, or
# loaded into kind), and waits until it is Available. Used by `make up` and the e2e suite.
#
# Environment: OPERATOR_NAMESPACE (default proglog-system), OPERATOR_IMAGE_REPOSITORY /
# OPERATOR_IMAGE_TAG (default proglog-operator / dev), HELM_EXTRA_ARGS (words), HELM (a helm
# binary; default: built from the Go module proxy by scripts/tools/helm.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
NAMESPACE="${OPERATOR_NAMESPACE:-proglog-system}"
: "${KUBECONFIG:?KUBECONFIG must name the cluster}"

# Helm installs a chart's CRDs only once and never upgrades them: apply the current one first,
# so a cluster that already had an older CRD validates against this checkout's schema.
kubectl apply --server-side --force-conflicts -f "$ROOT/charts/proglog-operator/crds/" >&2
# shellcheck disable=SC2086 # HELM_EXTRA_ARGS is a list of words
"${HELM:-$ROOT/scripts/tools/helm.sh}" upgrade --install proglog-operator "$ROOT/charts/proglog-operator" \
    --namespace "$NAMESPACE" --create-namespace \
    --set image.repository="${OPERATOR_IMAGE_REPOSITORY:-proglog-operator}" \
    --set image.tag="${OPERATOR_IMAGE_TAG:-dev}" \
    --set image.pullPolicy=IfNotPresent \
    --set replicaCount=1 --set leaderElection.enabled=false \
    --set logFormat=text \
    --wait --timeout 5m ${HELM_EXTRA_ARGS:-} >&2
echo "[install-operator] proglog-operator is Available in namespace $NAMESPACE" >&2
