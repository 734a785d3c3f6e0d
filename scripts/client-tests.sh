#!/usr/bin/env bash
# `make client-tests`: the clients in other languages against a real 3-node cluster.
#
#  1. buf lint and buf build of proto/proto (buf.yaml), and a check that the committed Go code in
#     clients/go/gen is what buf generate makes now (scripts/tools/buf.sh builds buf and the Go
#     plugins once from the Go module proxy).
#  2. A 3-node ProgLog Raft cluster on 127.0.0.1, free ports, mutual TLS with fresh dev
#     certificates (`proglog certs`), all in a temporary directory; stopped and removed on exit.
#  3. clients/go: go vet, then go test (the book's resolver/picker client: produce to the leader,
#     consume from the followers, checked on the wire).
#  4. clients/python: stubs generated with grpcio-tools (venv of scripts/tools/grpc-python.sh),
#     then its unittest suite and one run of the example CLI.
# A test that skips (no cluster) fails this script: here the cluster is always there.
#
# Environment:
#   CARGO_TARGET_DIR   where the release binaries are (default $HOME/.cache/proglog/target);
#                      `make release` runs only when one is
#                      missing (`make client-tests` always runs it first)
#   KEEP_CLUSTER_DIR=1 keep the temporary directory (certificates, data, node logs) on exit
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/proglog/target}"
BIN_DIR="$CARGO_TARGET_DIR/release"
PROGLOG="$BIN_DIR/proglog"
NODE="$BIN_DIR/proglog-node"
NODES=3

log() { printf '[client-tests] %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
step_started=$SECONDS
step() { log "$* (at $((SECONDS - step_started))s)"; }

for tool in go python3 curl; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is required and not on PATH"
done

if [[ ! -x "$PROGLOG" || ! -x "$NODE" ]]; then
    step "building the release node binaries"
    make -C "$ROOT" release
fi

step "tools: buf and the Go protobuf plugins, the Python grpcio venv (cached)"
"$ROOT/scripts/tools/buf.sh" >/dev/null
VENV="$("$ROOT/scripts/tools/grpc-python.sh")"

step "buf lint, buf build, generated Go code up to date"
(cd "$ROOT" && scripts/tools/buf.sh lint && scripts/tools/buf.sh build)
"$ROOT/clients/go/generate.sh" --check

WORK="$(mktemp -d "${TMPDIR:-/tmp}/proglog-client-tests.XXXXXX")"
CERTS="$WORK/certs"
pids=()
stop_cluster() {
    local status=$?
    trap - EXIT INT TERM
    if ((${#pids[@]})); then
        kill -TERM "${pids[@]}" 2>/dev/null || true
        # Graceful shutdown is quick; a node still up after 20 s is killed.
        local attempt pid
        for attempt in $(seq 1 100); do
            local alive=0
            for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
            ((alive)) || break
            ((attempt == 100)) && kill -KILL "${pids[@]}" 2>/dev/null
            sleep 0.2
        done
        wait "${pids[@]}" 2>/dev/null || true
    fi
    if ((status != 0)); then
        local i
        for ((i = 0; i < NODES; i++)); do
            [[ -f "$WORK/node-$i.log" ]] || continue
            log "last lines of node $i's log:"
            tail -n 15 "$WORK/node-$i.log" >&2
        done
    fi
    if [[ "${KEEP_CLUSTER_DIR:-}" == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$status"
}
trap stop_cluster EXIT
trap 'exit 130' INT TERM

step "starting a 3-node cluster in $WORK"
"$PROGLOG" certs --out "$CERTS" >/dev/null
# Free ports below the kernel's ephemeral range: a port the kernel hands out for `bind(0)` can be
# taken by any outgoing connection (a node dialling a peer) before the node binds it; ports
# below the range are only ever taken by an explicit bind (node/src/test_ports.rs, same rule).
mapfile -t ports < <(python3 -c '
import random, socket
low = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
candidates = list(range(max(10000, low - 10000), low))
random.shuffle(candidates)
found = []
for port in candidates:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    found.append(port)
    if len(found) == 2 * '"$NODES"':
        break
print("\n".join(map(str, found)))
')
rpc_addr() { printf '127.0.0.1:%s' "${ports[$1]}"; }
metrics_addr() { printf '127.0.0.1:%s' "${ports[$((NODES + $1))]}"; }

for ((i = 0; i < NODES; i++)); do
    mkdir -p "$WORK/data/node-$i"
    "$NODE" \
        --data-dir "$WORK/data/node-$i" \
        --bind-addr "$(rpc_addr "$i")" \
        --advertise-addr "$(rpc_addr "$i")" \
        --metrics-addr "$(metrics_addr "$i")" \
        --ordinal "$i" \
        --tls-cert "$CERTS/node.pem" --tls-key "$CERTS/node-key.pem" --tls-ca "$CERTS/ca.pem" \
        --acl-file "$CERTS/acl.csv" \
        --raft true \
        >>"$WORK/node-$i.log" 2>&1 &
    pids+=($!)
done

for ((i = 0; i < NODES; i++)); do
    for attempt in $(seq 1 150); do
        curl -fsS "http://$(metrics_addr "$i")/healthz" >/dev/null 2>&1 && break
        kill -0 "${pids[$i]}" 2>/dev/null || die "node $i exited"
        ((attempt == 150)) && die "node $i is not healthy after 30s"
        sleep 0.2
    done
done

admin=("$PROGLOG" --addr "$(rpc_addr 0)" --ca "$CERTS/ca.pem" --cert "$CERTS/root.pem" --key "$CERTS/root-key.pem")
"${admin[@]}" cluster init >/dev/null
# The first membership change waits for node 0 to lead and its initial membership to commit.
for ((i = 1; i < NODES; i++)); do
    for attempt in $(seq 1 100); do
        out="$("${admin[@]}" cluster add "$(rpc_addr "$i")" 2>&1)" && break
        ((attempt == 100)) && die "could not add node $i: $out"
        sleep 0.3
    done
done
"${admin[@]}" servers >&2

# Both suites take any node as the seed: the second one, to show discovery does not need the leader.
PROGLOG_ADDR="$(rpc_addr 1)"
export PROGLOG_ADDR PROGLOG_CERTS="$CERTS"

# Each suite must have run, not skipped: its output is checked for the test names and skips.
require_ran() { # output-file pattern...
    local out="$1"
    shift
    local pattern
    for pattern in "$@"; do
        grep -qE -- "$pattern" "$out" || die "expected '$pattern' in the test output"
    done
    if grep -qE -- '--- SKIP|skipped|SKIP:' "$out"; then
        die "a test was skipped although the cluster is running"
    fi
}

step "Go client: go vet, go test"
(
    cd "$ROOT/clients/go"
    go vet ./...
    go test -count=1 -v ./... 2>&1 | tee "$WORK/go-test.out"
    exit "${PIPESTATUS[0]}"
)
require_ran "$WORK/go-test.out" \
    '^--- PASS: TestBookClientProducesToLeaderConsumesFromFollowers' \
    '^--- PASS: TestIdentityWithoutPermissionIsDenied' '^--- PASS: TestPickerSpreadsReadsOverFollowers'

step "Python client: grpcio-tools codegen, unittest, example CLI"
"$ROOT/clients/python/generate.sh" "$WORK/python-gen"
(
    cd "$ROOT/clients/python"
    # GRPC_VERBOSITY: the untrusted-server test makes grpc core log its (expected) handshake failure.
    export PYTHONPATH="$WORK/python-gen" PYTHONDONTWRITEBYTECODE=1 GRPC_VERBOSITY=ERROR
    "$VENV/bin/python" -m unittest -v test_proglog_client 2>&1 | tee "$WORK/python-test.out"
    exit "${PIPESTATUS[0]}"
)
# unittest ends with a bare "OK" only when nothing was skipped ("OK (skipped=N)" otherwise).
require_ran "$WORK/python-test.out" '^Ran 3 tests' '^OK$'
offset="$(cd "$ROOT/clients/python" && PYTHONPATH="$WORK/python-gen" PYTHONDONTWRITEBYTECODE=1 \
    "$VENV/bin/python" proglog_client.py --addr "$PROGLOG_ADDR" --certs "$CERTS" produce "from the CLI")"
[[ "$offset" =~ ^[0-9]+$ ]] || die "the example CLI printed '$offset', want an offset"

step "all client tests passed"
