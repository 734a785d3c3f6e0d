#!/usr/bin/env bash
# Starts a real single-node Kubernetes cluster on this machine, all host processes, no Docker and
# no registry: the control plane of scripts/control-plane/ (etcd, kube-apiserver,
# kube-controller-manager), kube-scheduler, containerd + runc + the bridge CNI plugin (Debian's
# packages), kubelet, kube-proxy (iptables mode), a host-path volume provisioner (default
# StorageClass `proglog-local`) and CoreDNS. Images come from OCI archives built by
# scripts/local-cluster/images.sh and are imported into containerd at every start.
#
# What this machine needs and why (docs/LOCAL_KUBERNETES.md has the long form):
# - cgroupfs, not systemd: there is no systemd as PID 1; cgroups are v1 (failCgroupV1: false);
# - `restrict_oom_score_adj = true`: the VM lacks CAP_SYS_RESOURCE, without it every sandbox
#   fails with "can't get final child's PID from pipe"; privileged containers cannot run;
# - the API server binds the pod bridge's address (pods cannot reach the host's loopback).
#
# Writes everything to $PROGLOG_LC_DIR (default $PROGLOG_CACHE_DIR/run/local-cluster); prints
# the admin kubeconfig's path on stdout; `source $PROGLOG_LC_DIR/env` sets KUBECONFIG, kubectl
# and crictl. Reuses a healthy running cluster. Stop with down.sh (removes everything).
set -Eeuo pipefail

# shellcheck source=lib.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lib.sh"
STARTUP_TIMEOUT_SECS="${PROGLOG_LC_STARTUP_TIMEOUT:-300}"

# --- preflight -------------------------------------------------------------------------------
[[ "$(id -u)" == 0 ]] || lc_die "must run as root (containerd, kubelet and kube-proxy manage namespaces, mounts and iptables)"
for tool in containerd containerd-shim-runc-v2 runc ctr iptables ip openssl curl; do
    command -v "$tool" >/dev/null || lc_die "'$tool' is missing: run 'make local-cluster' (installs Debian's containerd, runc, containernetworking-plugins, iptables)"
done
[[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]] ||
    lc_die "CNI plugins missing in /usr/lib/cni: apt-get install containernetworking-plugins"
for component in "${LC_COMPONENTS[@]}"; do
    [[ -x "$(lc_binary "$component")" ]] || lc_die "$(lc_binary "$component") is missing: run 'make local-cluster'"
done
crictl_bin >/dev/null
shopt -s nullglob
archives=("$LC_IMAGES_DIR"/*.tar)
shopt -u nullglob
((${#archives[@]} > 0)) || lc_die "no image archives in $LC_IMAGES_DIR: run 'make local-cluster' (scripts/local-cluster/images.sh)"

# --- reuse a healthy cluster -----------------------------------------------------------------
all_running() {
    local c
    for c in "${LC_COMPONENTS[@]}"; do lc_running_pid "$c" >/dev/null || return 1; done
    for c in "${CP_COMPONENTS[@]}"; do cp_running_pid "$c" >/dev/null || return 1; done
}
if [[ -f "$LC_DIR/$LC_MARKER" ]] && all_running &&
    lc_kubectl get node "$LC_NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null | grep -qx True; then
    # Fresh builds reach the running cluster: importing an unchanged archive is a no-op.
    for archive in "${archives[@]}"; do lc_ctr images import "$archive" >/dev/null; done
    lc_log "already running from $LC_DIR (images re-imported)"
    echo "$CP_KUBECONFIG"
    exit 0
fi
# Anything left over (a crash, a half-started run) is removed first: the cluster is disposable.
"$LC_SCRIPT_DIR/down.sh"

started_at=$(date +%s)
mkdir -p "$LC_DIR"
touch "$LC_DIR/$LC_MARKER"
chmod 700 "$LC_DIR"
mkdir -p "$LC_DIR"/{containerd,cni/net.d,cni/ipam,kubelet,pod-logs,volumes,config}

on_error() {
    local status=$?
    lc_log "startup failed (status $status); last log lines:"
    local component
    for component in "${LC_COMPONENTS[@]}"; do
        [[ -f "$LC_DIR/$component.log" ]] || continue
        echo "----- $component.log -----" >&2
        tail -n 20 "$LC_DIR/$component.log" >&2
    done
    lc_log "run '$LC_SCRIPT_DIR/down.sh' to remove what was started (PROGLOG_LC_KEEP=1 keeps the logs)"
    exit "$status"
}
trap on_error ERR

wait_until() { # DESCRIPTION COMPONENT CMD...
    local description="$1" component="$2"
    shift 2
    local deadline=$(($(date +%s) + STARTUP_TIMEOUT_SECS))
    until "$@" >/dev/null 2>&1; do
        if [[ -n "$component" ]] && ! lc_running_pid "$component" >/dev/null; then
            lc_log "$component exited while waiting for $description"
            return 1
        fi
        (($(date +%s) < deadline)) || { lc_log "timed out after ${STARTUP_TIMEOUT_SECS}s waiting for $description"; return 1; }
        sleep 0.5
    done
    lc_log "ok: $description"
}

# --- network ---------------------------------------------------------------------------------
# The bridge exists before anything binds its address; the CNI bridge plugin adopts it (same
# name and gateway address) when the first pod starts.
ip link add "$LC_BRIDGE" type bridge
ip addr add "$LC_NODE_IP/${LC_POD_CIDR#*/}" dev "$LC_BRIDGE"
ip link set "$LC_BRIDGE" up
# Pods reach Services through the host's routing (kube-proxy's DNAT), so forwarding must be on;
# down.sh restores the previous value.
cat /proc/sys/net/ipv4/ip_forward >"$LC_DIR/ip_forward.before"
echo 1 >/proc/sys/net/ipv4/ip_forward
# br_netfilter makes bridged pod-to-pod traffic pass iptables, so a Service's DNAT is undone on
# the reply even when both pods share the bridge.
modprobe br_netfilter 2>/dev/null || true
[[ "$(cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null)" == 1 ]] ||
    lc_die "net.bridge.bridge-nf-call-iptables is not 1 (br_netfilter missing): Services between pods would not work"
# A Docker engine sets the FORWARD policy to DROP; allow the pod bridge explicitly then.
if iptables -S FORWARD | grep -qx -- '-P FORWARD DROP'; then
    iptables -I FORWARD -i "$LC_BRIDGE" -j ACCEPT -m comment --comment "$LC_RULE_COMMENT"
    iptables -I FORWARD -o "$LC_BRIDGE" -j ACCEPT -m comment --comment "$LC_RULE_COMMENT"
fi
# No nameserver: pods resolve only cluster names (this machine has no DNS to forward to).
printf 'options ndots:5\n' >"$LC_DIR/config/resolv.conf"

# --- containerd ------------------------------------------------------------------------------
cat >"$LC_DIR/config/containerd.toml" <<TOML
version = 2
root = "$LC_DIR/containerd/root"
state = "$LC_DIR/containerd/state"
[grpc]
  address = "$LC_SOCKET"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$LC_PAUSE_IMAGE"
  # The VM drops CAP_SYS_RESOURCE: runc cannot lower oom_score_adj below its own.
  restrict_oom_score_adj = true
  disable_apparmor = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$LC_DIR/cni/net.d"
TOML
cat >"$LC_DIR/cni/net.d/10-proglog.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "proglog",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$LC_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{ "subnet": "$LC_POD_CIDR", "gateway": "$LC_NODE_IP" }]],
        "routes": [{ "dst": "0.0.0.0/0" }],
        "dataDir": "$LC_DIR/cni/ipam"
      }
    }
  ]
}
JSON
lc_start containerd --config "$LC_DIR/config/containerd.toml"
wait_until "containerd answers" containerd lc_ctr version
for archive in "${archives[@]}"; do
    lc_ctr images import "$archive" >/dev/null
done
lc_log "imported ${#archives[@]} images: $(lc_ctr images ls -q | grep -v '^sha256:' | tr '\n' ' ')"

# --- control plane ---------------------------------------------------------------------------
"$LC_SCRIPT_DIR/../control-plane/up.sh" >/dev/null

# Node identities, signed by the control plane's CA. The kubelet's client certificate is what the
# Node authorizer and NodeRestriction expect (system:node:NAME in group system:nodes).
sign_cert kubelet "/O=system:nodes/CN=system:node:$LC_NODE_NAME" "$CLIENT_EXT"
sign_cert kubelet-serving "/CN=$LC_NODE_NAME" \
    "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:$LC_NODE_IP,DNS:$LC_NODE_NAME"
sign_cert kube-scheduler "/CN=system:kube-scheduler" "$CLIENT_EXT"
sign_cert kube-proxy "/CN=system:kube-proxy" "$CLIENT_EXT"
for identity in kubelet kube-scheduler kube-proxy; do
    write_kubeconfig "$LC_DIR/config/$identity.kubeconfig" "$identity"
done

free_port SCHEDULER_PORT
free_port KUBELET_PORT
free_port KUBELET_HEALTHZ_PORT
free_port PROXY_HEALTHZ_PORT
free_port PROXY_METRICS_PORT

lc_start kube-scheduler \
    --kubeconfig="$LC_DIR/config/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig="$LC_DIR/config/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig="$LC_DIR/config/kube-scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" \
    --leader-elect=false --profiling=false --v=1

# --- kubelet ---------------------------------------------------------------------------------
cat >"$LC_DIR/config/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $LC_NODE_IP
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $KUBELET_HEALTHZ_PORT
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$LC_SOCKET
# No systemd as PID 1, and cgroups v1 (hybrid): cgroupfs, and v1 explicitly allowed.
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
clusterDomain: cluster.local
clusterDNS: [$LC_DNS_IP]
resolvConf: $LC_DIR/config/resolv.conf
podLogsDir: $LC_DIR/pod-logs
# Images cannot be pulled again (no registry): never garbage-collect them, and evict only when
# the disk is really full.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
serializeImagePulls: false
maxPods: 110
# Secret and ConfigMap volumes are refreshed when the kubelet syncs a pod, every syncFrequency
# (default 1m, plus jitter). 10s makes renewed certificates, trust bundles and ACLs reach the
# pods within ~10-20 s instead of 60-90 s, which is what bounds the certificate, CA-rotation and
# user scenarios here. Nothing depends on the period: CA rotation proves what each pod loaded
# before its next phase, whatever the delay (kind and managed clusters keep 1m).
syncFrequency: 10s
YAML
lc_start kubelet \
    --config="$LC_DIR/config/kubelet.yaml" \
    --kubeconfig="$LC_DIR/config/kubelet.kubeconfig" \
    --root-dir="$LC_DIR/kubelet" \
    --cert-dir="$LC_DIR/kubelet/pki" \
    --node-ip="$LC_NODE_IP" \
    --hostname-override="$LC_NODE_NAME" \
    --v=1

# --- kube-proxy ------------------------------------------------------------------------------
cat >"$LC_DIR/config/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $LC_DIR/config/kube-proxy.kubeconfig}
mode: iptables
hostnameOverride: $LC_NODE_NAME
clusterCIDR: $LC_POD_CIDR
bindAddress: 127.0.0.1
healthzBindAddress: 127.0.0.1:$PROXY_HEALTHZ_PORT
metricsBindAddress: 127.0.0.1:$PROXY_METRICS_PORT
# NodePorts only on the node's bridge address, never on the machine's uplink.
nodePortAddresses: [$LC_NODE_IP/32]
# Leave the host's conntrack settings alone (a shared VM; zero means "do not change").
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {localhostNodePorts: false}
YAML
lc_start kube-proxy --config="$LC_DIR/config/kube-proxy.yaml" --v=1

# --- volumes ---------------------------------------------------------------------------------
KUBECONFIG="$CP_KUBECONFIG" lc_start local-path-provisioner \
    --root "$LC_DIR/volumes" --node-name "$LC_NODE_NAME"

wait_until "kube-scheduler /healthz" kube-scheduler curl -fsSk "https://127.0.0.1:$SCHEDULER_PORT/healthz"
wait_until "kubelet /healthz" kubelet curl -fsS "http://127.0.0.1:$KUBELET_HEALTHZ_PORT/healthz"
wait_until "kube-proxy /healthz" kube-proxy curl -fsS "http://127.0.0.1:$PROXY_HEALTHZ_PORT/healthz"
node_ready() {
    lc_kubectl get node "$LC_NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -qx True
}
wait_until "node $LC_NODE_NAME Ready" kubelet node_ready

lc_kubectl apply -f - >/dev/null <<YAML
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: proglog-local
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: proglog.dev/local-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
YAML
lc_kubectl apply -f "$LC_SCRIPT_DIR/manifests/coredns.yaml" >/dev/null
wait_until "CoreDNS available" "" lc_kubectl -n kube-system wait deployment/coredns --for=condition=Available --timeout=2s

printf 'runtime-endpoint: unix://%s\nimage-endpoint: unix://%s\n' "$LC_SOCKET" "$LC_SOCKET" >"$LC_DIR/config/crictl.yaml"
cat >"$LC_DIR/env" <<ENV
export KUBECONFIG=$CP_KUBECONFIG
export PATH=$(k8s_bin_dir):$(dirname "$(crictl_bin)"):\$PATH
export CRI_CONFIG_FILE=$LC_DIR/config/crictl.yaml
ENV
trap - ERR
lc_log "ready in $(($(date +%s) - started_at))s: node $LC_NODE_NAME ($LC_NODE_IP), API $(cp_api_url), run dir $LC_DIR"
lc_log "use it with: source $LC_DIR/env"
echo "$CP_KUBECONFIG"
