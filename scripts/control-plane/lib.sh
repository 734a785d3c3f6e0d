# Sourced by up.sh, down.sh and with-control-plane.sh: the run directory layout, logging and
# process helpers shared by starting and stopping the local control plane.
# shellcheck shell=bash

CP_SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.sh
source "$CP_SCRIPT_DIR/versions.sh"
# shellcheck source=../lib/detached.sh
source "$CP_SCRIPT_DIR/../lib/detached.sh"

# One directory per running control plane: certificates, etcd data, logs, pid files, kubeconfig.
# Several can run side by side (each picks free ports) as long as their directories differ.
CP_DIR="${PROGLOG_CP_DIR:-$PROGLOG_CACHE_DIR/run/control-plane}"
# shellcheck disable=SC2034 # used by up.sh, which sources this file
CP_KUBECONFIG="$CP_DIR/kubeconfig"
# Marks a directory as a run directory, so only those are ever deleted (PROGLOG_CP_DIR could
# point anywhere by mistake).
CP_MARKER=.proglog-control-plane
# Start order; stopped in reverse.
CP_COMPONENTS=(etcd kube-apiserver kube-controller-manager)

cp_log() { printf '[control-plane] %s\n' "$*" >&2; }
cp_die() { cp_log "error: $*"; exit 1; }

# The binary path of a component, from the versioned cache written by build.sh.
cp_binary() {
    case "$1" in
        etcd) printf '%s/etcd' "$(etcd_bin_dir)" ;;
        *) printf '%s/%s' "$(k8s_bin_dir)" "$1" ;;
    esac
}

# Prints the pid of a component if the pid file names a live process running that component's
# binary; a stale pid file (or a pid reused by an unrelated process) prints nothing.
cp_running_pid() {
    detached_pid "$CP_DIR/$1.pid" "$(cp_binary "$1")"
}

# Stops one component: SIGTERM, then SIGKILL if it has not exited after a grace period.
cp_stop_component() {
    local component="$1" pid waited=0
    if pid="$(cp_running_pid "$component")"; then
        kill -TERM "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do
            if ((waited >= 150)); then
                cp_log "$component (pid $pid) ignored SIGTERM for 15s; sending SIGKILL"
                kill -KILL "$pid" 2>/dev/null || true
                break
            fi
            sleep 0.1
            waited=$((waited + 1))
        done
    fi
    rm -f "$CP_DIR/$component.pid"
}

cp_stop_all() {
    local i
    for ((i = ${#CP_COMPONENTS[@]} - 1; i >= 0; i--)); do
        cp_stop_component "${CP_COMPONENTS[$i]}"
    done
}

# Deletes the run directory if it is one of ours (has the marker) or is empty; refuses otherwise.
cp_wipe_run_dir() {
    [[ -e "$CP_DIR" ]] || return 0
    if [[ -f "$CP_DIR/$CP_MARKER" || -z "$(ls -A "$CP_DIR")" ]]; then
        rm -rf "$CP_DIR"
    else
        cp_die "refusing to delete $CP_DIR: it is not empty and not a control-plane run directory (no $CP_MARKER)"
    fi
}

# --- PKI and kubeconfigs (shared with scripts/local-cluster/up.sh, which adds node certs) -----
PKI="$CP_DIR/pki"

# ECDSA P-256 keys: fast to generate, accepted by every component and by rustls.
new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# sign_cert NAME SUBJECT EXTENSIONS: NAME.key + NAME.crt signed by the CA, valid 30 days.
sign_cert() {
    local name="$1" subject="$2" extensions="$3"
    new_key "$PKI/$name.key"
    openssl req -new -key "$PKI/$name.key" -subj "$subject" -out "$PKI/$name.csr" 2>/dev/null
    printf '%b\n' "$extensions" >"$PKI/$name.ext"
    local ca="${PKI_CA:-ca}"
    openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/$ca.crt" -CAkey "$PKI/$ca.key" -CAcreateserial \
        -days 30 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
    rm -f "$PKI/$name.csr" "$PKI/$name.ext"
    chmod 600 "$PKI/$name.key"
}
# shellcheck disable=SC2034 # used by the scripts that source this file
CLIENT_EXT="basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth"

# The API server's URL, recorded by up.sh (it binds 127.0.0.1, or the node IP when a kubelet
# runs beside it: pods cannot reach the host's loopback).
cp_api_url() { cat "$CP_DIR/apiserver-url"; }

# write_kubeconfig FILE CERT_NAME: a kubeconfig with the certificates embedded (portable to
# any client library, including kube-rs).
write_kubeconfig() {
    local file="$1" cert="$2"
    cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: proglog-local
  cluster:
    server: $(cp_api_url)
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $cert
  user:
    client-certificate-data: $(base64 -w0 "$PKI/$cert.crt")
    client-key-data: $(base64 -w0 "$PKI/$cert.key")
contexts:
- name: proglog-local
  context:
    cluster: proglog-local
    user: $cert
    namespace: default
current-context: proglog-local
EOF
    chmod 600 "$file"
}

# free_port VAR: sets VAR to a TCP port no socket uses (and not already handed out by this
# shell). Assigns instead of printing: a $(...) subshell would lose the taken_ports bookkeeping.
# The port is below the kernel's ephemeral range: a port in that range can be taken by any
# outgoing connection on the machine between this pick and the component's bind (CI saw etcd
# fail with "bind: address already in use" while tests made connections). Ports below it are
# only taken by an explicit bind. The window is the 10 000 ports under the ones tests reserve
# (node/src/test_ports.rs, the 10 000 just below the range), so the two never pick alike.
declare -A taken_ports=()
free_port() {
    local -n result="$1" # a nameref: assigning it sets the caller's variable
    local candidate low _
    read -r low _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || low=32768
    local high=$((low - 10000)) floor=$((low - 20000))
    ((floor >= 1024)) || floor=1024
    ((high > floor + 100)) || cp_die "the ephemeral port range starts at $low: no room below it"
    for _ in $(seq 1 200); do
        candidate=$((floor + RANDOM % (high - floor)))
        [[ -z "${taken_ports[$candidate]:-}" ]] || continue
        # Any socket with that local port (listening, connected or closing) makes it busy.
        if [[ -z "$(ss -Htan "sport = :$candidate" 2>/dev/null)" ]]; then
            taken_ports[$candidate]=1
            # shellcheck disable=SC2034 # nameref to the caller's variable
            result=$candidate
            return 0
        fi
    done
    cp_die "no free TCP port found in $floor-$high"
}
