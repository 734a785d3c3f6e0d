# Sourced by the control-plane scripts: the pinned versions and where their binaries are cached.
# Override with the environment (K8S_VERSION, ETCD_VERSION, PROGLOG_CACHE_DIR).
# shellcheck shell=bash

# Newest v1.34.x on the Go module proxy when pinned (`go list -m -versions k8s.io/kubernetes`).
K8S_VERSION="${K8S_VERSION:-v1.34.4}"
# Newest v3.6.x (`go list -m -versions go.etcd.io/etcd/server/v3`).
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
PROGLOG_CACHE_DIR="${PROGLOG_CACHE_DIR:-$HOME/.cache/proglog}"

k8s_bin_dir() { printf '%s/k8s/%s/bin' "$PROGLOG_CACHE_DIR" "$K8S_VERSION"; }
etcd_bin_dir() { printf '%s/etcd/%s/bin' "$PROGLOG_CACHE_DIR" "$ETCD_VERSION"; }
# Symlinks to all four binaries, for tools that read KUBEBUILDER_ASSETS (envtest).
kubebuilder_assets_dir() { printf '%s/kubebuilder-assets/%s' "$PROGLOG_CACHE_DIR" "$K8S_VERSION"; }
