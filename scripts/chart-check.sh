#!/usr/bin/env bash
# chart-check.sh (`make chart-check`): checks the Helm chart charts/proglog-operator for real.
#
#  1. `helm lint --strict` with the default values and with ci/namespaced-values.yaml.
#  2. `helm template` of three installs: the defaults (ClusterRole, CRD included), the namespaced
#     override (a Role per watched namespace, image tag, Lease name, every optional field), and a
#     single replica without leader election; rendering two replicas without leader election
#     must fail.
#  3. Monitoring (ci/monitoring-values.yaml: every monitoring object on; nothing of it by default):
#     - `promtool check rules` on the rendered PrometheusRule's groups; every alert has a
#       severity label, summary and description annotations and a `for:`;
#     - `promtool test rules` with ci/prometheusrule-tests.yaml (alerts firing and not firing);
#     - the Grafana dashboard as shipped in its ConfigMap: valid JSON, every panel has queries,
#       every query parses (`promtool check rules` on a rules file built from them); it matches
#       Grafana's dashboard schema and its data source and variable references resolve
#       (scripts/tools/grafana-dashboard-check.sh), and broken copies of it are rejected;
#     - every metric name the alerts and the dashboard use is registered in node/src/metrics/
#       or operator/src/controller/metrics.rs (kubelet_volume_stats_* excepted: the kubelet's).
#     promtool is built by scripts/tools/promtool.sh.
#  4. On a fresh local control plane (scripts/control-plane/with-control-plane.sh), in namespaces
#     that enforce and warn on Pod Security "restricted":
#     - `kubectl apply --dry-run=server` of every rendered manifest: the API server validates
#       every object (schema, RBAC rules, Pod Security); any warning fails the check;
#     - the RBAC, read back from the server: no `*` in apiGroups/resources/verbs, no
#       non-resource URLs, no escalate/bind/impersonate, Secrets never listed or watched, no
#       cluster-scoped role when namespaces are listed;
#     - the RBAC applied for real, then asked (`kubectl auth can-i --as` the operator's
#       ServiceAccount) what the operator may and may not do, and the operator's write path
#       (server-side apply of every owned kind, finalizer and status patches, Lease) executed as
#       that ServiceAccount;
#     - the Prometheus Operator's CRDs (scripts/tools/prometheus-operator-crds.sh) installed, then
#       the monitoring install dry-run like the others.
#
# Environment: PROGLOG_CACHE_DIR (tools and scratch files), CHART_DIR (default: the chart).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
CP_SCRIPTS="$SCRIPT_DIR/control-plane"
# shellcheck source=control-plane/versions.sh
source "$CP_SCRIPTS/versions.sh"
CHART_DIR="${CHART_DIR:-$ROOT/charts/proglog-operator}"
KUBECTL="$(k8s_bin_dir)/kubectl"

log() { printf '[chart-check] %s\n' "$*" >&2; }
fail() { log "FAIL: $*"; exit 1; }

# The three installs: release name, namespace, then helm value arguments.
DEFAULT_RELEASE=proglog-operator DEFAULT_NS=proglog-system
SCOPED_RELEASE=scoped SCOPED_NS=proglog-scoped
SOLO_RELEASE=solo SOLO_NS=proglog-solo
SCOPED_VALUES="$CHART_DIR/ci/namespaced-values.yaml"
# What ci/namespaced-values.yaml sets, as the checks below expect it.
SCOPED_FULLNAME=plo SCOPED_LEASE=plo-leader
WATCHED=(team-a team-b)
UNWATCHED=team-c
MONITORING_RELEASE=mon MONITORING_NS=proglog-monitoring
MONITORING_VALUES="$CHART_DIR/ci/monitoring-values.yaml"
# shellcheck disable=SC2034 # used by lib/chart-monitoring.sh
RULE_TESTS="$CHART_DIR/ci/prometheusrule-tests.yaml"
# What ci/monitoring-values.yaml sets, as the checks below expect it.
GRAFANA_NS=proglog-grafana

# ---------------------------------------------------------------------------------------------
# Phase 1: lint and render (no cluster needed).
render_all() {
    local out="$1" helm
    helm="$("$SCRIPT_DIR/tools/helm.sh")"
    [[ -f "$SCOPED_VALUES" ]] || fail "missing $SCOPED_VALUES"

    "$helm" lint --strict --kube-version "$K8S_VERSION" "$CHART_DIR" >&2 ||
        fail "helm lint --strict (default values)"
    "$helm" lint --strict --kube-version "$K8S_VERSION" -f "$SCOPED_VALUES" "$CHART_DIR" >&2 ||
        fail "helm lint --strict -f $SCOPED_VALUES"

    "$helm" lint --strict --kube-version "$K8S_VERSION" -f "$MONITORING_VALUES" "$CHART_DIR" >&2 ||
        fail "helm lint --strict -f $MONITORING_VALUES"

    local template=("$helm" template --kube-version "$K8S_VERSION")
    "${template[@]}" "$DEFAULT_RELEASE" "$CHART_DIR" -n "$DEFAULT_NS" --include-crds >"$out/default.yaml" ||
        fail "helm template (default values)"
    "${template[@]}" "$SCOPED_RELEASE" "$CHART_DIR" -n "$SCOPED_NS" -f "$SCOPED_VALUES" >"$out/scoped.yaml" ||
        fail "helm template -f $SCOPED_VALUES"
    "${template[@]}" "$SOLO_RELEASE" "$CHART_DIR" -n "$SOLO_NS" \
        --set leaderElection.enabled=false --set replicaCount=1 >"$out/solo.yaml" ||
        fail "helm template (one replica without leader election)"
    "${template[@]}" "$MONITORING_RELEASE" "$CHART_DIR" -n "$MONITORING_NS" -f "$MONITORING_VALUES" >"$out/monitoring.yaml" ||
        fail "helm template -f $MONITORING_VALUES"
    # The PodMonitor follows watchNamespaces unless told otherwise.
    "${template[@]}" "$MONITORING_RELEASE" "$CHART_DIR" -n "$MONITORING_NS" -f "$MONITORING_VALUES" \
        -f "$SCOPED_VALUES" >"$out/monitoring-scoped.yaml" || fail "helm template -f $MONITORING_VALUES -f $SCOPED_VALUES"
    "${template[@]}" "$MONITORING_RELEASE" "$CHART_DIR" -n "$MONITORING_NS" -f "$MONITORING_VALUES" \
        -f "$SCOPED_VALUES" --set 'monitoring.nodePodMonitor.namespaces={team-x}' >"$out/monitoring-listed.yaml" ||
        fail "helm template with monitoring.nodePodMonitor.namespaces"
    if "${template[@]}" bad "$CHART_DIR" --set monitoring.prometheusRule.diskFreeRatio=1.5 >/dev/null 2>&1; then
        fail "values.schema.json accepted monitoring.prometheusRule.diskFreeRatio=1.5"
    fi
    if "${template[@]}" bad "$CHART_DIR" --set monitoring.nodePodMonitor.enable=true >/dev/null 2>&1; then
        fail "values.schema.json accepted the misspelt monitoring.nodePodMonitor.enable"
    fi

    local refused
    if refused="$("${template[@]}" bad "$CHART_DIR" --set leaderElection.enabled=false 2>&1)"; then
        fail "two replicas without leader election rendered instead of failing"
    fi
    grep -q 'leaderElection.enabled=false needs replicaCount: 1' <<<"$refused" ||
        fail "two replicas without leader election failed for another reason: $refused"
    log "ok: helm lint --strict and helm template (4 installs; 2 replicas without leader election and values outside values.schema.json refused)"
}

# Monitoring (no cluster needed): check_monitoring and its helpers.
# shellcheck source=lib/chart-monitoring.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/chart-monitoring.sh"

# ---------------------------------------------------------------------------------------------
# Phase 2 helpers (inside with-control-plane.sh: KUBECONFIG is the throwaway control plane).
k() { "$KUBECTL" "$@"; }

# jq_check FILE DESCRIPTION FILTER: FILTER (over the server's List of objects) must print true.
jq_check() {
    local file="$1" description="$2" filter="$3"
    [[ "$(jq -r "$filter" "$file")" == "true" ]] || fail "$description (in $(basename "$file"))"
}

# dry_run NAME: server-side dry run of NAME.yaml; writes the objects as the server returned them
# to NAME.server.json and fails on any warning (Pod Security, deprecations, unknown fields).
dry_run() {
    local out="$1" name="$2" warnings
    k apply --dry-run=server -o json -f "$out/$name.yaml" >"$out/$name.server.json" 2>"$out/$name.stderr" ||
        fail "the API server rejected $name.yaml: $(cat "$out/$name.stderr")"
    warnings="$(grep -i 'warning' "$out/$name.stderr" || true)"
    [[ -z "$warnings" ]] || fail "the API server warned about $name.yaml: $warnings"
    # One object becomes a bare object, several a List: normalise to a List.
    jq 'if .kind == "List" then . else {kind: "List", items: [.]} end' "$out/$name.server.json" >"$out/$name.list.json"
    log "ok: kubectl apply --dry-run=server $name.yaml ($(jq '.items | length' "$out/$name.list.json") objects, no warnings)"
}

# The static least-privilege rules every install must satisfy.
check_rbac_static() {
    local file="$1"
    local roles='[.items[] | select(.kind == "Role" or .kind == "ClusterRole") | .rules[]]'
    jq_check "$file" "a Role/ClusterRole rule uses a * wildcard" \
        "$roles | all(.[]; ([.apiGroups[]?, .resources[]?, .verbs[]?, .resourceNames[]?] | index(\"*\")) == null)"
    jq_check "$file" "a rule grants non-resource URLs" "$roles | all(.[]; .nonResourceURLs == null)"
    jq_check "$file" "a rule grants escalate, bind or impersonate" \
        "$roles | all(.[]; (.verbs | index(\"escalate\", \"bind\", \"impersonate\")) == null)"
    jq_check "$file" "a rule lets the operator list or watch Secrets" \
        "$roles | all(.[] | select(.resources | index(\"secrets\")); (.verbs | index(\"list\", \"watch\")) == null)"
    jq_check "$file" "a rule grants RBAC objects" \
        "$roles | all(.[]; (.apiGroups | index(\"rbac.authorization.k8s.io\")) == null)"
}

# deployment_has FILE DESCRIPTION FILTER: FILTER over the Deployment must print true.
deployment_has() {
    jq_check "$1" "$2" "[.items[] | select(.kind == \"Deployment\")] | length == 1 and (.[0] | $3)"
}

check_rendered() {
    local out="$1"
    local args='.spec.template.spec.containers[0].args'
    # Defaults: cluster-wide, CRD included, leader election, image tag = appVersion.
    local default="$out/default.list.json" app_version
    app_version="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$CHART_DIR/Chart.yaml")"
    # shellcheck disable=SC2016 # $k and $want are jq variables
    jq_check "$default" "the default install lacks the CRD, ClusterRole(Binding) or leader-election Role" \
        '[.items[] | .kind] as $k | ["CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount", "Service", "Deployment"] | all(. as $want | $k | index($want) != null)'
    deployment_has "$default" "default image is not ghcr.io/proglog/proglog-operator:$app_version" \
        ".spec.template.spec.containers[0].image == \"ghcr.io/proglog/proglog-operator:$app_version\""
    deployment_has "$default" "the default install restricts namespaces or disables leader election" \
        "$args | all(startswith(\"--namespace\") or . == \"--no-leader-election\" | not)"
    check_rbac_static "$default"

    # Namespaced: a Role + RoleBinding per watched namespace, nothing cluster-scoped.
    local scoped="$out/scoped.list.json" ns
    jq_check "$scoped" "the namespaced install has a ClusterRole or ClusterRoleBinding" \
        '[.items[] | select(.kind | startswith("Cluster"))] | length == 0'
    for ns in "${WATCHED[@]}"; do
        jq_check "$scoped" "no Role and RoleBinding $SCOPED_FULLNAME in $ns" \
            "[.items[] | select((.kind == \"Role\" or .kind == \"RoleBinding\") and .metadata.namespace == \"$ns\" and .metadata.name == \"$SCOPED_FULLNAME\")] | length == 2"
        deployment_has "$scoped" "the operator is not told to watch $ns" "$args | index(\"--namespace=$ns\") != null"
    done
    deployment_has "$scoped" "image tag override not applied" \
        '.spec.template.spec.containers[0].image == "registry.example/proglog/proglog-operator:1.2.3-check"'
    deployment_has "$scoped" "Lease name override not applied" "$args | index(\"--lease-name=$SCOPED_LEASE\") != null"
    check_rbac_static "$scoped"

    # One replica without leader election: no Lease permissions at all.
    local solo="$out/solo.list.json"
    deployment_has "$solo" "--no-leader-election missing" "($args | index(\"--no-leader-election\") != null) and .spec.replicas == 1"
    jq_check "$solo" "Lease permissions granted without leader election" \
        '[.items[] | select(.kind == "Role") | .rules[] | select(.resources | index("leases"))] | length == 0'
    check_rbac_static "$solo"
    log "ok: rendered objects (images, namespaces, Lease) and static RBAC rules"
}

# can NAMESPACE SA EXPECTED VERB RESOURCE [ARGS...]: asks the API server whether the
# ServiceAccount SA (namespace:name) may VERB RESOURCE in NAMESPACE (-A: in every namespace);
# EXPECTED is yes or no.
can() {
    local ns="$1" sa="$2" expected="$3" answer scope
    shift 3
    if [[ "$ns" == -A ]]; then scope=(--all-namespaces); else scope=(-n "$ns"); fi
    answer="$(k auth can-i "$@" "${scope[@]}" --as="system:serviceaccount:$sa" 2>&1 || true)"
    [[ "$answer" == "$expected" ]] ||
        fail "can-i $* in $ns as $sa: expected $expected, got '$answer'"
}

check_rbac_live() {
    local out="$1"
    # The real objects (the CRD comes with the default install; pods stay Pending: no kubelet).
    local name
    for name in default scoped solo; do
        k apply -f "$out/$name.yaml" >/dev/null 2>"$out/$name.apply.stderr" ||
            fail "kubectl apply $name.yaml: $(cat "$out/$name.apply.stderr")"
    done
    k wait --for=condition=Established --timeout=60s crd/proglogclusters.proglog.dev \
        crd/proglogusers.proglog.dev >/dev/null

    local sa="$SCOPED_NS:$SCOPED_FULLNAME" ns verb
    for ns in "${WATCHED[@]}"; do
        for verb in get list watch patch; do can "$ns" "$sa" yes "$verb" proglogclusters.proglog.dev; done
        can "$ns" "$sa" yes patch proglogclusters.proglog.dev --subresource=status
        can "$ns" "$sa" yes update proglogclusters.proglog.dev --subresource=finalizers
        for verb in get list watch; do can "$ns" "$sa" yes "$verb" proglogusers.proglog.dev; done
        can "$ns" "$sa" yes patch proglogusers.proglog.dev --subresource=status
        can "$ns" "$sa" no patch proglogusers.proglog.dev
        can "$ns" "$sa" no delete proglogusers.proglog.dev
        for verb in get list watch create patch; do can "$ns" "$sa" yes "$verb" statefulsets.apps; done
        for verb in list watch create patch; do
            can "$ns" "$sa" yes "$verb" configmaps
            can "$ns" "$sa" yes "$verb" services
            can "$ns" "$sa" yes "$verb" poddisruptionbudgets.policy
        done
        can "$ns" "$sa" yes delete services
        for verb in get create patch; do can "$ns" "$sa" yes "$verb" secrets; done
        can "$ns" "$sa" yes list pods
        can "$ns" "$sa" yes create pods --subresource=eviction
        can "$ns" "$sa" yes delete pods
        for verb in list patch deletecollection; do can "$ns" "$sa" yes "$verb" persistentvolumeclaims; done
        can "$ns" "$sa" yes create events.events.k8s.io
        # Least privilege: what it must not do in a watched namespace.
        for verb in list watch delete; do can "$ns" "$sa" no "$verb" secrets; done
        for verb in update delete; do can "$ns" "$sa" no "$verb" statefulsets.apps; done
        can "$ns" "$sa" no delete persistentvolumeclaims
        can "$ns" "$sa" no delete proglogclusters.proglog.dev
        can "$ns" "$sa" no create pods
        can "$ns" "$sa" no create pods --subresource=exec
        can "$ns" "$sa" no create roles.rbac.authorization.k8s.io
        can "$ns" "$sa" no '*' '*'
    done
    # Nothing outside the watched namespaces, except its own Lease.
    can "$UNWATCHED" "$sa" no get secrets
    can "$UNWATCHED" "$sa" no list proglogclusters.proglog.dev
    can "$UNWATCHED" "$sa" no patch statefulsets.apps
    can "$SCOPED_NS" "$sa" no get secrets
    can -A "$sa" no list proglogclusters.proglog.dev
    can "$SCOPED_NS" "$sa" yes get "leases.coordination.k8s.io/$SCOPED_LEASE"
    can "$SCOPED_NS" "$sa" yes update "leases.coordination.k8s.io/$SCOPED_LEASE"
    can "$SCOPED_NS" "$sa" yes create leases.coordination.k8s.io
    can "$SCOPED_NS" "$sa" no update leases.coordination.k8s.io/someone-elses-lease
    can "$SCOPED_NS" "$sa" no delete "leases.coordination.k8s.io/$SCOPED_LEASE"
    can "${WATCHED[0]}" "$sa" no create leases.coordination.k8s.io

    # Cluster-wide install: every namespace, still no Secret listing and no wildcard.
    sa="$DEFAULT_NS:$DEFAULT_RELEASE"
    can -A "$sa" yes watch proglogclusters.proglog.dev
    can -A "$sa" yes watch statefulsets.apps
    can "$UNWATCHED" "$sa" yes get secrets
    can -A "$sa" no list secrets
    can -A "$sa" no '*' '*'
    can -A "$sa" no delete namespaces
    can "$DEFAULT_NS" "$sa" yes update leases.coordination.k8s.io/proglog-operator-leader
    can "$UNWATCHED" "$sa" no create leases.coordination.k8s.io
    # Without leader election: no Lease at all.
    can "$SOLO_NS" "$SOLO_NS:$SOLO_RELEASE" no create leases.coordination.k8s.io
    log "ok: kubectl auth can-i as each ServiceAccount (allowed and denied calls)"

    check_write_path "$out"
}

# The operator's write path executed as the namespaced install's ServiceAccount: server-side
# apply (create, then change) of every owned kind, the finalizer and status patches, an Event,
# the Lease; and the same apply refused outside the watched namespaces.
check_write_path() {
    local out="$1" ns="${WATCHED[0]}" as="--as=system:serviceaccount:$SCOPED_NS:$SCOPED_FULLNAME"
    local ssa=(apply --server-side --force-conflicts --field-manager=proglog-operator "$as")
    owned_objects() { # NAMESPACE GENERATION
        cat <<EOF
apiVersion: v1
kind: ConfigMap
metadata: {name: check-config, namespace: $1}
data: {generation: "$2"}
---
apiVersion: v1
kind: Secret
metadata: {name: check-node-tls, namespace: $1}
stringData: {generation: "$2"}
---
apiVersion: v1
kind: Service
metadata: {name: check-headless, namespace: $1, labels: {generation: "$2"}}
spec: {clusterIP: None, selector: {app: check}, ports: [{name: grpc, port: 8400}]}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: check, namespace: $1, labels: {generation: "$2"}}
spec: {maxUnavailable: 1, selector: {matchLabels: {app: check}}}
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: check, namespace: $1}
spec:
  replicas: $2
  serviceName: check-headless
  selector: {matchLabels: {app: check}}
  template:
    metadata: {labels: {app: check}}
    spec:
      automountServiceAccountToken: false
      securityContext: {runAsNonRoot: true, runAsUser: 65532, seccompProfile: {type: RuntimeDefault}}
      containers:
        - name: node
          image: proglog-node:check
          securityContext: {allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
EOF
    }
    local generation
    for generation in 1 2; do
        owned_objects "$ns" "$generation" >"$out/owned-$generation.yaml"
        k "${ssa[@]}" -f "$out/owned-$generation.yaml" >/dev/null 2>"$out/owned.stderr" ||
            fail "server-side apply #$generation of the owned kinds as the operator in $ns: $(cat "$out/owned.stderr")"
    done
    [[ "$(k -n "$ns" get statefulset check -o jsonpath='{.spec.replicas}')" == 2 ]] ||
        fail "the second server-side apply as the operator did not change the StatefulSet"
    k -n "$ns" delete service check-headless "$as" >/dev/null || fail "deleting a Service as the operator"
    owned_objects "$UNWATCHED" 1 >"$out/owned-unwatched.yaml"
    if k "${ssa[@]}" -f "$out/owned-unwatched.yaml" >/dev/null 2>"$out/owned.stderr"; then
        fail "the namespaced operator could write to the unwatched namespace $UNWATCHED"
    fi
    grep -q 'forbidden' "$out/owned.stderr" || fail "apply in $UNWATCHED failed, but not as forbidden: $(cat "$out/owned.stderr")"

    # The cluster itself (created by an admin): finalizer (JSON patch) and status (merge patch).
    printf 'apiVersion: proglog.dev/v1alpha1\nkind: ProgLogCluster\nmetadata: {name: check, namespace: %s}\nspec: {replicas: 3}\n' "$ns" |
        k apply -f - >/dev/null
    k -n "$ns" patch proglogcluster check "$as" --type=json \
        -p '[{"op": "add", "path": "/metadata/finalizers", "value": ["proglog.dev/cleanup"]}]' >/dev/null ||
        fail "adding the finalizer as the operator"
    k -n "$ns" patch proglogcluster check "$as" --subresource=status --type=merge \
        -p '{"status": {"phase": "Pending"}}' >/dev/null || fail "patching the status as the operator"
    k -n "$ns" patch proglogcluster check "$as" --type=json -p '[{"op": "remove", "path": "/metadata/finalizers"}]' >/dev/null ||
        fail "removing the finalizer as the operator"
    k -n "$ns" create -f - "$as" >/dev/null <<EOF || fail "publishing an Event as the operator"
apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: check.1, namespace: $ns}
eventTime: "2026-01-01T00:00:00.000000Z"
reportingController: proglog-operator
reportingInstance: check
action: Reconcile
reason: Check
type: Normal
regarding: {apiVersion: proglog.dev/v1alpha1, kind: ProgLogCluster, name: check, namespace: $ns}
EOF

    # The Lease: create, then renew (update) as the operator.
    printf 'apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: %s, namespace: %s}\nspec: {holderIdentity: check}\n' \
        "$SCOPED_LEASE" "$SCOPED_NS" >"$out/lease.yaml"
    k create -f "$out/lease.yaml" "$as" >/dev/null || fail "creating the Lease as the operator"
    k -n "$SCOPED_NS" get lease "$SCOPED_LEASE" "$as" -o json | jq '.spec.holderIdentity = "check-2"' |
        k replace -f - "$as" >/dev/null || fail "renewing the Lease as the operator"
    log "ok: the operator's write path as its ServiceAccount (server-side apply, finalizer, status, Event, Lease)"
}

server_checks() {
    local out="$1" ns
    for ns in "$DEFAULT_NS" "$SCOPED_NS" "$SOLO_NS" "$MONITORING_NS" "$GRAFANA_NS" "${WATCHED[@]}" "$UNWATCHED"; do
        k create namespace "$ns" >/dev/null
        k label namespace "$ns" pod-security.kubernetes.io/enforce=restricted \
            pod-security.kubernetes.io/warn=restricted >/dev/null
    done
    local name
    for name in default scoped solo; do dry_run "$out" "$name"; done
    check_rendered "$out"
    check_rbac_live "$out"
    check_monitoring_server "$out"
}

# The monitoring objects validated by the API server against the Prometheus Operator's own CRDs.
check_monitoring_server() {
    local out="$1" crds
    crds="$("$SCRIPT_DIR/tools/prometheus-operator-crds.sh")"
    # Server-side apply: the CRDs are too large for the last-applied annotation of a client-side apply.
    k apply --server-side -f "$crds" >/dev/null 2>"$out/crds.stderr" ||
        fail "installing the Prometheus Operator CRDs from $crds: $(cat "$out/crds.stderr")"
    k wait --for=condition=Established --timeout=60s crd/podmonitors.monitoring.coreos.com \
        crd/servicemonitors.monitoring.coreos.com crd/prometheusrules.monitoring.coreos.com >/dev/null
    dry_run "$out" monitoring
    jq_check "$out/monitoring.list.json" "the server did not accept the PodMonitor, ServiceMonitor and PrometheusRule" \
        '[.items[] | .kind] | (index("PodMonitor") != null) and (index("ServiceMonitor") != null) and (index("PrometheusRule") != null)'
}

# ---------------------------------------------------------------------------------------------
if [[ "${1:-}" == "--server-checks" ]]; then
    [[ -n "${KUBECONFIG:-}" && -d "${2:-}" ]] || fail "--server-checks DIR runs only under with-control-plane.sh"
    server_checks "$2"
    exit 0
fi

# jq and yq (Debian's, a jq wrapper) come with Debian images; install them where they do not.
if ! command -v jq >/dev/null 2>&1 || ! command -v yq >/dev/null 2>&1; then
    log "installing jq and yq (Debian packages)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q jq yq >/dev/null ||
        fail "jq and yq are required (apt-get install jq yq)"
fi
[[ -x "$KUBECTL" ]] || fail "no kubectl at $KUBECTL: run 'make control-plane' first"
mkdir -p "$PROGLOG_CACHE_DIR/run"
OUT="$(mktemp -d "$PROGLOG_CACHE_DIR/run/chart-check.XXXXXX")"
# PROGLOG_CHART_CHECK_KEEP=1 keeps the rendered manifests and the server's answers.
if [[ "${PROGLOG_CHART_CHECK_KEEP:-}" == 1 ]]; then
    log "keeping $OUT"
else
    trap 'rm -rf "$OUT"' EXIT
fi
started=$SECONDS
render_all "$OUT"
check_monitoring "$OUT"
"$CP_SCRIPTS/with-control-plane.sh" "$SCRIPT_DIR/chart-check.sh" --server-checks "$OUT"
log "chart ok in $((SECONDS - started))s"
