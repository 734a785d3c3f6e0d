#!/usr/bin/env bash
# Starts a real local Kubernetes control plane: etcd, kube-apiserver (RBAC, client-certificate
# authentication) and kube-controller-manager (garbage collector, StatefulSet, Deployment/
# ReplicaSet, service-account controllers, ...), on 127.0.0.1 only unless PROGLOG_CP_NODE_IP is
# set (below). Alone, there is no kubelet, so pods are created but stay Pending;
# scripts/local-cluster/up.sh adds the node components around it.
#
# Writes everything to $PROGLOG_CP_DIR (default $PROGLOG_CACHE_DIR/run/control-plane):
#   pki/          CA, apiserver serving cert, service-account keys, admin and controller certs
#   etcd-data/    etcd's data
#   *.log, *.pid  one per component
#   kubeconfig    admin (group system:masters) kubeconfig with embedded credentials
#   env           `export KUBECONFIG=...` lines to source
# and waits until /readyz is ok, the default namespace exists and the controller manager has
# created its default ServiceAccount. Prints the kubeconfig path on stdout.
#
# If a control plane is already running from this directory, it is reused. Stop with down.sh.
#
# PROGLOG_CP_NODE_IP=ADDR (set by scripts/local-cluster/up.sh, which adds a kubelet): the API
# server binds ADDR instead of 127.0.0.1 (pods cannot reach the host's loopback), publishes it as
# the `kubernetes` Service's endpoint, authorizes kubelets with the Node authorizer and reaches
# them with its own client certificate (logs, exec, port-forward).
# errtrace: the ERR trap (stop what was started) also fires for failures inside functions.
set -Eeuo pipefail

# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"

# Virtual range: the apiserver allocates Service ClusterIPs from it; only kube-proxy (local
# cluster) routes them, to addresses on this machine.
SERVICE_CIDR="${PROGLOG_CP_SERVICE_CIDR:-10.96.0.0/16}"
SERVICE_FIRST_IP="${PROGLOG_CP_SERVICE_FIRST_IP:-10.96.0.1}"
STARTUP_TIMEOUT_SECS="${PROGLOG_CP_STARTUP_TIMEOUT:-180}"
NODE_IP="${PROGLOG_CP_NODE_IP:-}"
API_IP="${NODE_IP:-127.0.0.1}"

for component in "${CP_COMPONENTS[@]}"; do
    [[ -x "$(cp_binary "$component")" ]] ||
        cp_die "$(cp_binary "$component") is missing: run 'make control-plane' (scripts/control-plane/build.sh) first"
done
command -v openssl >/dev/null || cp_die "openssl is required (apt-get install -y openssl)"
command -v curl >/dev/null || cp_die "curl is required (apt-get install -y curl)"

kubectl_admin() { "$(cp_binary kubectl)" --kubeconfig "$CP_KUBECONFIG" "$@"; }

# Reuse a healthy control plane instead of starting a second one over the same directory.
if running="$(for c in "${CP_COMPONENTS[@]}"; do cp_running_pid "$c" >/dev/null && echo "$c"; done)" &&
    [[ "$(wc -w <<<"$running")" -eq "${#CP_COMPONENTS[@]}" ]] &&
    kubectl_admin get --raw /readyz >/dev/null 2>&1; then
    cp_log "already running from $CP_DIR"
    echo "$CP_KUBECONFIG"
    exit 0
fi
# Anything left over (a crashed component, a half-started run) is stopped and wiped: the
# control plane is disposable test infrastructure, its state is never worth keeping.
cp_stop_all
cp_wipe_run_dir
mkdir -p "$PKI" "$CP_DIR/etcd-data"
touch "$CP_DIR/$CP_MARKER"
chmod 700 "$CP_DIR" "$CP_DIR/etcd-data"

# On any failure below, stop what was started and show the tail of the component logs.
on_error() {
    local status=$?
    cp_log "startup failed (status $status); last log lines:"
    local component
    for component in "${CP_COMPONENTS[@]}"; do
        [[ -f "$CP_DIR/$component.log" ]] || continue
        echo "----- $component.log -----" >&2
        tail -n 15 "$CP_DIR/$component.log" >&2
    done
    cp_stop_all
    exit "$status"
}
trap on_error ERR

started_at=$(date +%s)

# --- ports: free TCP ports ------------------------------------------------------------------
free_port ETCD_CLIENT_PORT
free_port ETCD_PEER_PORT
free_port APISERVER_PORT
free_port KCM_PORT
echo "https://$API_IP:$APISERVER_PORT" >"$CP_DIR/apiserver-url"

# --- PKI -------------------------------------------------------------------------------------
new_key "$PKI/ca.key"
openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=proglog-local-control-plane-ca" -days 30 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$PKI/ca.crt" 2>/dev/null

sign_cert apiserver "/CN=kube-apiserver" \
    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:$API_IP,IP:127.0.0.1,IP:$SERVICE_FIRST_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
# Group system:masters = cluster-admin through the bootstrap RBAC policy.
sign_cert admin "/O=system:masters/CN=proglog-admin" "$CLIENT_EXT"
# The bootstrap RBAC policy grants this user what the controller manager itself needs; each
# controller then runs under its own service account (--use-service-account-credentials).
sign_cert controller-manager "/CN=system:kube-controller-manager" "$CLIENT_EXT"
# The API server's identity towards kubelets (logs, exec, port-forward), as kubeadm names it.
sign_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$CLIENT_EXT"
# kube-controller-manager's serving certificate (its /healthz is probed with our CA).
sign_cert controller-manager-serving "/CN=kube-controller-manager" \
    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost"
# The aggregation layer's front proxy has its own CA, as in kubeadm: a certificate of the main
# CA must never be able to assert user names through request headers.
new_key "$PKI/front-proxy-ca.key"
openssl req -x509 -new -key "$PKI/front-proxy-ca.key" -subj "/CN=proglog-local-front-proxy-ca" -days 30 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "$PKI/front-proxy-ca.crt" 2>/dev/null
# sign_cert signs with ca.* unless PKI_CA names another CA (only for this call).
PKI_CA=front-proxy-ca sign_cert front-proxy-client "/CN=front-proxy-client" "$CLIENT_EXT"
# Service-account token signing key pair (RSA: what most token verifiers expect).
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$PKI/sa.key" 2>/dev/null
openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
chmod 600 "$PKI"/*.key

write_kubeconfig "$CP_KUBECONFIG" admin
write_kubeconfig "$CP_DIR/controller-manager.kubeconfig" controller-manager

# --- processes -------------------------------------------------------------------------------
# start COMPONENT ARGS...: runs the component in its own session (so a Ctrl-C in the caller's
# terminal does not reach it; down.sh stops it by pid) with output in COMPONENT.log.
start() {
    local component="$1"
    shift
    detached_start "$CP_DIR/$component.log" "$CP_DIR/$component.pid" "$(cp_binary "$component")" "$@"
}

# wait_until DESCRIPTION COMPONENT CMD...: polls CMD until it succeeds; fails early if the
# component has exited (its log says why) or after the startup timeout.
wait_until() {
    local description="$1" component="$2"
    shift 2
    local deadline=$(($(date +%s) + STARTUP_TIMEOUT_SECS))
    until "$@" >/dev/null 2>&1; do
        cp_running_pid "$component" >/dev/null ||
            { cp_log "$component exited while waiting for $description"; return 1; }
        (($(date +%s) < deadline)) ||
            { cp_log "timed out after ${STARTUP_TIMEOUT_SECS}s waiting for $description"; return 1; }
        sleep 0.2
    done
}

start etcd \
    --name proglog-local \
    --data-dir "$CP_DIR/etcd-data" \
    --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "proglog-local=http://127.0.0.1:$ETCD_PEER_PORT" \
    --log-level warn
wait_until "etcd /health" etcd curl -fsS "http://127.0.0.1:$ETCD_CLIENT_PORT/health"

# Without a node IP there is no address to publish for the `kubernetes` Service (loopback is
# refused) and no kubelet to authorize.
if [[ -n "$NODE_IP" ]]; then
    node_flags=(--endpoint-reconciler-type=lease "--authorization-mode=Node,RBAC"
        --enable-admission-plugins=NodeRestriction
        --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt"
        --kubelet-client-key="$PKI/apiserver-kubelet-client.key"
        --kubelet-preferred-address-types=InternalIP)
else
    node_flags=(--endpoint-reconciler-type=none --authorization-mode=RBAC)
fi
start kube-apiserver \
    --bind-address="$API_IP" \
    --advertise-address="$API_IP" \
    --secure-port="$APISERVER_PORT" \
    --etcd-servers="http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --cert-dir="$CP_DIR/apiserver-certs" \
    --tls-cert-file="$PKI/apiserver.crt" \
    --tls-private-key-file="$PKI/apiserver.key" \
    --client-ca-file="$PKI/ca.crt" \
    --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" \
    --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User \
    --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$PKI/front-proxy-client.crt" \
    --proxy-client-key-file="$PKI/front-proxy-client.key" \
    --anonymous-auth=false \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$PKI/sa.pub" \
    --service-account-signing-key-file="$PKI/sa.key" \
    --allow-privileged=true \
    --profiling=false \
    "${node_flags[@]}" \
    --v=1
wait_until "kube-apiserver /readyz" kube-apiserver \
    curl -fsS --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "$(cp_api_url)/readyz"

start kube-controller-manager \
    --kubeconfig="$CP_DIR/controller-manager.kubeconfig" \
    --authentication-kubeconfig="$CP_DIR/controller-manager.kubeconfig" \
    --authorization-kubeconfig="$CP_DIR/controller-manager.kubeconfig" \
    --bind-address=127.0.0.1 \
    --secure-port="$KCM_PORT" \
    --tls-cert-file="$PKI/controller-manager-serving.crt" \
    --tls-private-key-file="$PKI/controller-manager-serving.key" \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$PKI/sa.key" \
    --root-ca-file="$PKI/ca.crt" \
    --cluster-signing-cert-file="$PKI/ca.crt" \
    --cluster-signing-key-file="$PKI/ca.key" \
    --leader-elect=false \
    --profiling=false \
    --v=1
wait_until "kube-controller-manager /healthz" kube-controller-manager \
    curl -fsS --cacert "$PKI/ca.crt" "https://127.0.0.1:$KCM_PORT/healthz"

wait_until "the default namespace" kube-apiserver kubectl_admin get namespace default
# Created by the controller manager's service-account controller: proves the controllers run.
wait_until "the default ServiceAccount (created by kube-controller-manager)" kube-controller-manager \
    kubectl_admin -n default get serviceaccount default

cat >"$CP_DIR/env" <<EOF
export KUBECONFIG=$CP_KUBECONFIG
export PATH=$(k8s_bin_dir):\$PATH
EOF
trap - ERR
cp_log "ready in $(($(date +%s) - started_at))s: apiserver $(cp_api_url), etcd 127.0.0.1:$ETCD_CLIENT_PORT, run dir $CP_DIR"
cp_log "use it with: source $CP_DIR/env   (or KUBECONFIG=$CP_KUBECONFIG)"
echo "$CP_KUBECONFIG"
